# Job sizes by label (config `resources:`): rules name a label, profiles size the labels.


def job_size(label: str) -> dict:
    """A rule's resources from its size label (config `resources:`), scaled by the attempt so a
    job retried after running out of memory or time comes back bigger. The label's other keys
    (`gpu`, `slurm_partition`, `gpu_model`, `machine_type`, ...) go to the job as they are."""
    size = config["resources"][label]
    return {**{k: v for k, v in size.items() if k not in ("mem_mb", "runtime")},
            "mem_mb": lambda wc, attempt: size["mem_mb"] * attempt,
            "runtime": lambda wc, attempt: size["runtime"] * attempt}
