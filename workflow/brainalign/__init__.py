"""brainalign: compare deep networks with brains (features, RDMs, encoding, RSA, statistics).

The numerical library behind the brainalign Snakemake workflow. Modules:

- :mod:`brainalign.rdm`       representational dissimilarity matrices and their comparison
- :mod:`brainalign.encoding`  ridge regression with exact leave-one-out CV (RidgeGCV)
- :mod:`brainalign.projection` streamed sparse random projection
- :mod:`brainalign.linking`   cRSA, veRSA and voxel-wise encoding scores
- :mod:`brainalign.noise_ceiling` reliability-based noise ceilings
- :mod:`brainalign.models`    model registry, loading and streamed feature extraction
- :mod:`brainalign.io`        one reader (and synthetic writer) per data format
- :mod:`brainalign.demo`      the embedded demo with a planted answer
"""

__version__ = "0.1.0"
