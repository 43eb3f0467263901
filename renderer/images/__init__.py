"""Images: EXR/PNG files, colour helpers, error metrics (FLIP, PSNR) and captioned panel figures."""
