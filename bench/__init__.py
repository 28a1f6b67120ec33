"""LeNet Lab benchmarks: each script prints a table and writes bench/results/<name>.json."""
