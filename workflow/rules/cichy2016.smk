# Cichy et al. 2016: MEG decoding RSA, fMRI ROI and searchlight RSA, statistics and figures.
