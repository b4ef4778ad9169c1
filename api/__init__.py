"""The read-only FastAPI projection server over an rgstore store."""
