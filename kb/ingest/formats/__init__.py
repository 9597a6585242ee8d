"""The format parsers, one module per format (registered in `kb.ingest.base.PARSERS`), and the OCR they share."""
