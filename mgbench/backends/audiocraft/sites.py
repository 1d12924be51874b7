"""Where the sites are in audiocraft's decoder layers (needs no audiocraft)."""

#: the module of an audiocraft ``StreamingTransformerLayer`` whose output is a site's output (``engine/sites.py``)
AUDIOCRAFT_SITES = {"self_attn": "self_attn.out_proj", "cross_attn": "cross_attention.out_proj", "mlp": "linear2",
                    "resid": ""}
