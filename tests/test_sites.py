import pytest

from mgbench.engine.sites import Site, all_sites, site_module
from mgbench.errors import SiteError, UnknownNameError


def test_parse_and_print():
    assert Site.parse("L12.mlp") == Site(12, "mlp") and str(Site(3, "cross_attn")) == "L3.cross_attn"
    with pytest.raises(SiteError, match="L<layer>.<component>"):
        Site.parse("12.mlp")


def test_sites_map_to_the_decoder_modules(tiny):
    layers = tiny.decoder_layers
    assert site_module(layers, Site(1, "self_attn")) is layers[1].self_attn
    assert site_module(layers, Site(1, "cross_attn")) is layers[1].encoder_attn
    assert site_module(layers, Site(2, "mlp")) is layers[2].fc2
    assert site_module(layers, Site(3, "resid")) is layers[3]
    assert [str(s) for s in all_sites(4)[:4]] == ["L0.self_attn", "L0.cross_attn", "L0.mlp", "L1.self_attn"]
    assert len(all_sites(4)) == 12 and all_sites(4, ["mlp"], layers=[3]) == [Site(3, "mlp")]


def test_bad_sites_are_clear_errors(tiny):
    with pytest.raises(SiteError, match="layer 4 is out of range; this model has layers 0..3"):
        site_module(tiny.decoder_layers, Site(4, "mlp"))
    with pytest.raises(UnknownNameError, match="unknown site component 'attn'; valid: self_attn, cross_attn, mlp"):
        Site(0, "attn").validate(4)
