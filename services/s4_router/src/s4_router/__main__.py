"""`python -m s4_router`: serve the S4 API on S4_HOST:S4_PORT and consume orders:intent."""

from s4_router.config import Settings
from s4_router.entrypoints.api import create_app
from svckit.runner import run_service


def main() -> None:
    run_service("s4-router", Settings, create_app)


if __name__ == "__main__":
    main()
