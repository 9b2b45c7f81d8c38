"""Running the workflow at scale: pre-flight checks of a SLURM profile against the cluster."""
