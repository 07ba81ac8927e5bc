"""The REST job service (FastAPI). It validates uploads from their headers, stores them, records and
enqueues jobs; it never imports TensorFlow (only workers run models)."""
