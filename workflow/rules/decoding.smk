# Time-resolved pairwise decoding RDMs, shared by every M/EEG dataset. A paper's rule file
# writes the epochs as results/brain/{dataset}/sub-{subject}_epochs.npz (brainalign.io.meg
# array format: conditions x trials x channels x times) and registers the config section
# holding the dataset's decoding options (register_paper(decoding=...), common.smk).


rule decoding_rdms:
    input:
        epochs=epochs_npz(),
    output:
        rdms=decoding_h5(),
    log:
        log("decoding", "{dataset}_sub-{subject}.log"),
    benchmark:
        bench("decoding", "{dataset}_sub-{subject}.tsv")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=decoding_gpus,
    params:
        decoding=decoding_opts,
        seed=cfg("seed"),
    script:
        "../scripts/decoding_rdms.py"
