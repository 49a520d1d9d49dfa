"""Building blocks shared by the models, plain torch: the correlation cost volume, the
modulated deformable convolution, residual and U-Net blocks, DPDNet's sharp-region gate and
matching costs, and K3DN's kernels, disparity branch and sharp-region blocks. Nothing here
knows a model, a dataset or a training loop."""
