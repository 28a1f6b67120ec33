"""LeNet Lab's Streamlit dashboard: reads the run store, trains in a background worker."""
