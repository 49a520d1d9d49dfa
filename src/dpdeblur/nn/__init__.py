"""Building blocks shared by the models, plain torch: the correlation cost volume, the
modulated deformable convolution (on torchvision's kernel or sampled with ``grid_sample``),
residual and U-Net blocks, DPDNet's sharp-region gate and matching costs, and K3DN's
kernels, disparity branch and sharp-region blocks; the precision rules they share under
autocast and the ``channels_last`` rule for their weights. Nothing here knows a model, a
dataset or a training loop."""
