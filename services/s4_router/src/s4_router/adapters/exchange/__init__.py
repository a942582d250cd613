"""Exchange port and its adapters: in-process venue simulator (`sim_client`) and ccxt."""
