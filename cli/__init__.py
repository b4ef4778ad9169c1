"""The rgstore command line: thin click shells over rgstore.Store."""
