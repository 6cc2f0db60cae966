# Training the DNN variants of Cichy et al. 2016 (object, scene, unecological, noise, untrained).
