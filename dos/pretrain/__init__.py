"""Self-supervised pretraining: views, block masking, student inputs per distillation mode, view pairing,
heads and prototypes, the EMA teacher, and the DOS pretraining model that ties them to an encoder."""
