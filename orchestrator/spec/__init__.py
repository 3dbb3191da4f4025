"""What to run: the sweep spec, the resources a trial asks for, and `plan`'s estimate of the cost."""
