# provenance: config snapshot, sample sheet, tool versions, checksums of the final outputs.
# A shell rule: Snakemake re-launches run: jobs through a shell line it does not quote safely.
import sys


rule provenance:
    input:
        provenance_inputs(),
    output:
        directory(f"{OUT}/provenance"),
    log:
        f"{LOGS}/provenance.log",
    params:
        # the interpreter running this workflow, which imports bulkfm (common.smk does)
        python=sys.executable,
        cfg=json.dumps(config, sort_keys=True),
        sheet=SHEET,
        repo=workflow.basedir,
    resources:
        **job_size("small"),
    shell:
        "{params.python:q} -m bulkfm.provenance {input:q} -o {output:q} --config-json {params.cfg:q} "
        "--sheet {params.sheet:q} --repo {params.repo:q} > {log:q} 2>&1"
