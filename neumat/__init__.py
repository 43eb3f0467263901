"""The `neumat` command line: the one place that reaches both `renderer` and `training`."""
