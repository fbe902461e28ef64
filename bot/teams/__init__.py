"""The Teams edge: the adapter, checks on what arrives, the handler, cards, the app package."""
