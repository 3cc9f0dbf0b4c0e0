"""ShuffleNetV1/V2, GhostNet, SqueezeNet and Xception as specs."""
