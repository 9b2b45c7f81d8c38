# provenance: config snapshot, sample sheet, tool versions, checksums of the final outputs.


rule provenance:
    input:
        provenance_inputs(),
    output:
        directory(f"{OUT}/provenance"),
    log:
        f"{LOGS}/provenance.log",
    resources:
        mem_mb=1000,
        runtime=60,
    run:
        from pathlib import Path

        from bulkfm.provenance import write_provenance

        write_provenance(Path(output[0]), config=config, sheet=Path(SHEET),
                         outputs=[Path(p) for p in input], repo=Path(workflow.basedir))
