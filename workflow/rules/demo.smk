# The embedded demo: synthetic NSD-format data with a planted answer (brainalign.demo).


if cfg("demo", "enabled"):

    rule demo_data:
        output:
            design=NSD_DESIGN,
            truth=str(NSD_ROOT / "truth.json"),
        log:
            log("demo_data.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            demo=cfg("demo"),
            seed=cfg("seed"),
        script:
            "../scripts/demo_data.py"
