"""`python -m md_feeder`: publish market data to Redis; /health and /metrics on MD_HOST:MD_PORT."""

from md_feeder.app import create_app
from md_feeder.config import Settings
from svckit.runner import run_service


def main() -> None:
    run_service("md-feeder", Settings, create_app)


if __name__ == "__main__":
    main()
