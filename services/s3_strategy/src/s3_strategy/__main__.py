"""`python -m s3_strategy`: serve the S3 API on S3_HOST:S3_PORT."""

from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from svckit.runner import run_service


def main() -> None:
    run_service("s3-strategy", Settings, create_app)


if __name__ == "__main__":
    main()
