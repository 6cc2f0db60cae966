# Helpers of the shared decoding stage (decoding.smk).


def decoding_opts(wildcards):
    return cfg(DECODING_SECTION[wildcards.dataset], "decoding")


def decoding_gpus(wildcards):
    device = str(cfg(DECODING_SECTION[wildcards.dataset], "decoding", "device"))
    return 1 if device.startswith("cuda") else 0


def epochs_npz(dataset="{dataset}", subject="{subject}"):
    return results("brain", dataset, f"sub-{subject}_epochs.npz")


def decoding_h5(dataset="{dataset}", subject="{subject}"):
    return results("decoding", dataset, f"sub-{subject}.h5")
