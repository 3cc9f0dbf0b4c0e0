"""Weight-sharing supernet (Once-for-All, Cai et al. ICLR 2020; BigNAS, Yu et al. ECCV 2020): train once, then
read any subnet's accuracy in about a second and extract it as a stand-alone model. See docs/supernet.md."""
