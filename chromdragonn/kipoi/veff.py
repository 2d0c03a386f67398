"""Let the legacy ``kipoi_veff.score_variants`` (kipoi-veff 0.3.1) run on this model and the pinned stack.

kipoi-veff 0.3.1 predates numpy 2 and this kind of model; on the pinned stack
(numpy 2.4, PyVCF3 standing in for pyvcf, no pybedtools / pysam) it fails in
these places, each fixed here without changing numpy or any file on disk:

1. numpy 2 removed ``np.int``, ``np.str``, ``np.in1d``, ``np.string_`` ... that
   kipoi_veff's mutators, reshapers and scoring use: those kipoi_veff modules
   (and kipoi.writers) get a numpy that also has the old names; numpy itself and
   every other module are untouched.
2. ``ensure_tabixed_vcf`` and ``_get_vcf_to_region`` import pybedtools and pysam
   just to bgzip/tabix the VCF.  With a dataloader that takes a BED of regions
   (``bed_input``, as this one does), kipoi_veff reads the VCF from start to end
   and never queries the index, so the VCF is used as it is (plain or bgzipped);
   pybedtools is then needed only for ``restriction_bed``, as before.
3. kipoi 0.8.6 no longer reads the ``postprocessing`` sections of model.yaml and
   dataloader.yaml (it warns "Unrecognized fields"), but kipoi_veff 0.3.1 reads
   them from ``model.postprocessing`` / ``dataloader.postprocessing``: they are
   parsed from the model's own yaml files (``yaml.safe_load``) with kipoi_veff's
   specs and attached to the model and dataloader objects it is given.
5. PyVCF3's ``Info`` header record has a 7th field (``type_code``) that pyvcf's
   did not; kipoi_veff's VcfWriter builds it with six, so the output VCF's INFO
   declarations are built with PyVCF3's own type code.
4. The model's output has one column per requested context, so its schema
   shape is ``(None,)`` with no column labels; kipoi_veff wants a fixed width to
   label the columns (``range(None)``).  Columns are labelled per call with the
   dataloader's ``cell_types`` (or 0..C-1).

Use::

    import kipoi, kipoi_veff
    from chromdragonn.kipoi import veff
    veff.install()
    model = kipoi.get_model("path/to/model_dir", source="dir")
    preds = kipoi_veff.score_variants(
        model, dl_args={"fasta_file": FASTA, "cell_types": "E003,E116", "mean_bigwig": BW},
        input_vcf=VCF, output_vcf=OUT_VCF, scores=["diff"], return_predictions=True)
    preds["diff"]  # DataFrame: one row per SNV, one column per context

Like any kipoi-veff 0.3.1 run, it scores SNVs only (indels are skipped with a
warning) and only the first ALT of a multi-allelic record.
"""
from __future__ import annotations

import functools
import logging
import types
from pathlib import Path

import numpy

log = logging.getLogger(__name__)

_INSTALLED = False
_current_labels: list[str] | None = None

# The kipoi_veff modules whose module-level ``np`` is swapped for the compat numpy.
_VEFF_MODULES = ("kipoi_veff.snv_predict", "kipoi_veff.scores", "kipoi_veff.parsers", "kipoi_veff.mutation_map",
                 "kipoi_veff.utils.generic", "kipoi_veff.utils.mutators", "kipoi_veff.utils.dna_reshapers",
                 "kipoi_veff.utils.io", "kipoi_veff.utils.scoring_fns", "kipoi_veff.utils.plot")


def _vcf_as_is(input_fn, is_sorted=False, force_tabix=True):
    """Stands in for kipoi_veff's ensure_tabixed_vcf: the VCF is read in order, no index needed."""
    import os

    if not os.path.isfile(input_fn):
        raise FileNotFoundError(f"VCF file not found: {input_fn}")
    return input_fn


def _get_vcf_to_region(model_info, restriction_bed, seq_length):
    """kipoi_veff's own, but pybedtools is imported only when a restriction BED is given."""
    import kipoi_veff
    from kipoi_veff import snv_predict

    if restriction_bed is not None:
        return snv_predict._legacy_get_vcf_to_region(model_info, restriction_bed, seq_length)
    if model_info.requires_region_definition:
        return kipoi_veff.SnvCenteredRg(model_info, seq_length=seq_length)
    raise RuntimeError("this compatibility layer needs a dataloader with postprocessing > variant_effects > "
                       "bed_input (kipoi_veff would otherwise tabix-query the VCF, which needs pysam)")


def _pyvcf3_info_field(id, num, info_type, desc, source, version):
    import vcf.parser

    fields = vcf.parser._Info._fields
    if "type_code" in fields:
        return vcf.parser._Info(id, num, info_type, desc, source, version, vcf.parser._encode_type(info_type))
    return vcf.parser._Info(id, num, info_type, desc, source, version)


def _variable_width(schema) -> bool:
    return getattr(schema, "column_labels", None) is None and None in tuple(getattr(schema, "shape", ()) or ())


class _FixedWidthTargets:
    """A view of a targets schema with no variable dimension, for ModelInfoExtractor's set-up only."""

    def __init__(self, targets):
        self._targets = targets
        self.shape = (0,)
        self.column_labels = None

    def __getattr__(self, name):
        return getattr(self._targets, name)


class _ModelView:
    def __init__(self, model):
        self._model = model
        self.schema = types.SimpleNamespace(**{k: getattr(model.schema, k) for k in ("inputs", "targets")})
        self.schema.targets = _FixedWidthTargets(model.schema.targets)

    def __getattr__(self, name):
        return getattr(self._model, name)


def _labels_for(width: int):
    if _current_labels is not None and len(_current_labels) == width:
        return numpy.array(_current_labels)
    return numpy.arange(width).astype(str)


def _postprocessing_section(yaml_path: Path) -> dict | None:
    import yaml

    if not yaml_path.is_file():
        return None
    with open(yaml_path) as fh:
        doc = yaml.safe_load(fh) or {}
    return (doc.get("postprocessing") or {}).get("variant_effects")


def attach_postprocessing(model, dataloader=None) -> None:
    """Give a kipoi model (and its dataloader class) the ``postprocessing`` kipoi_veff reads.

    Parsed from ``model.yaml`` in ``model.source_dir`` and from the dataloader's
    yaml (``dataloader.path``); objects that already have one are left alone.
    """
    from kipoi_veff.specs import VarEffectDataLoaderArgs, VarEffectModelArgs

    if getattr(model, "postprocessing", None) is None and getattr(model, "source_dir", None):
        section = None
        for name in ("model.yaml", "model.yml"):
            section = section or _postprocessing_section(Path(model.source_dir) / name)
        model.postprocessing = {"variant_effects": VarEffectModelArgs.from_config(section)} if section else {}
    if dataloader is not None and getattr(dataloader, "postprocessing", None) is None:
        path = getattr(dataloader, "path", None)
        if path is None and getattr(dataloader, "source_dir", None):
            path = Path(dataloader.source_dir) / "dataloader.yaml"
        section = _postprocessing_section(Path(path)) if path else None
        dataloader.postprocessing = ({"variant_effects": VarEffectDataLoaderArgs.from_config(section)}
                                     if section else {})


def install() -> None:
    """Apply the fixes to the imported kipoi_veff / kipoi; calling it again does nothing."""
    global _INSTALLED
    if _INSTALLED:
        return
    from chromdragonn.kipoi.compat import LegacyNumpy, apply_kipoi_compat

    apply_kipoi_compat()  # kipoi.writers' np.string_ (kipoi predict to HDF5 / TSV)
    import sys
    import warnings

    with warnings.catch_warnings():
        # kipoi_veff/__main__.py imports pkg_resources, deprecated by setuptools: not the user's concern.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="pkg_resources")
        import kipoi_veff  # noqa: F401  (imports the modules score_variants uses)

    compat_np = LegacyNumpy()
    for name in _VEFF_MODULES:
        module = sys.modules.get(name)  # plot needs shapely; it is not imported by score_variants
        if module is not None and getattr(module, "np", None) is numpy:
            module.np = compat_np

    from kipoi_veff import snv_predict
    from kipoi_veff.utils import dna_reshapers, generic

    # 2. no pybedtools / pysam for the in-order (bed_input) path
    snv_predict._legacy_ensure_tabixed_vcf = snv_predict.ensure_tabixed_vcf
    snv_predict.ensure_tabixed_vcf = _vcf_as_is
    snv_predict._legacy_get_vcf_to_region = snv_predict._get_vcf_to_region
    snv_predict._get_vcf_to_region = _get_vcf_to_region

    # 4. variable output width: label the columns per call
    original_init = generic.ModelInfoExtractor.__init__

    @functools.wraps(original_init)
    def info_init(self, model_obj, dataloader_obj):
        if _variable_width(model_obj.schema.targets):
            original_init(self, _ModelView(model_obj), dataloader_obj)
            self.model = model_obj
            self.model_out_annotation = None  # known only once the dataloader says which contexts
        else:
            original_init(self, model_obj, dataloader_obj)

    generic.ModelInfoExtractor.__init__ = info_init

    original_names = dna_reshapers.OutputReshaper.get_column_names

    def get_column_names(arrayschema_obj):
        if _variable_width(arrayschema_obj):
            return None
        return original_names(arrayschema_obj)

    dna_reshapers.OutputReshaper.get_column_names = staticmethod(get_column_names)
    original_flatten = dna_reshapers.OutputReshaper.flatten

    @functools.wraps(original_flatten)
    def flatten(self, ds):
        if self.anno is None and not isinstance(ds, (dict, list)):
            flat = self.ensure_2dim(numpy.asarray(ds))
            return flat, _labels_for(flat.shape[1])
        return original_flatten(self, ds)

    dna_reshapers.OutputReshaper.flatten = flatten

    original_predict_snvs = snv_predict.predict_snvs

    @functools.wraps(original_predict_snvs)
    def predict_snvs(model, dataloader, vcf_fpath, batch_size, *args, **kwargs):
        global _current_labels
        dl_args = kwargs.get("dataloader_args") or (args[1] if len(args) > 1 else None) or {}
        attach_postprocessing(model, dataloader)
        previous = _current_labels
        try:
            from chromdragonn.inputs.expression import parse_contexts

            _current_labels = parse_contexts(dl_args["cell_types"]) if dl_args.get("cell_types") else None
        except Exception:  # labels are cosmetic; the dataloader reports bad cell_types itself
            _current_labels = None
        try:
            return original_predict_snvs(model, dataloader, vcf_fpath, batch_size, *args, **kwargs)
        finally:
            _current_labels = previous

    snv_predict.predict_snvs = predict_snvs
    kipoi_veff.predict_snvs = predict_snvs

    # 5. PyVCF3's INFO header record
    from kipoi_veff.utils import io as veff_io

    veff_io.VcfWriter._generate_info_field = staticmethod(_pyvcf3_info_field)

    # 3. the postprocessing sections kipoi 0.8.6 drops
    original_score_variants = snv_predict.score_variants

    @functools.wraps(original_score_variants)
    def score_variants(model, *args, **kwargs):
        if isinstance(model, str):
            import kipoi

            model = kipoi.get_model(model, source=kwargs.get("source", "kipoi"), with_dataloader=True)
        attach_postprocessing(model, getattr(model, "default_dataloader", None))
        return original_score_variants(model, *args, **kwargs)

    snv_predict.score_variants = score_variants
    kipoi_veff.score_variants = score_variants
    _INSTALLED = True
    log.debug("kipoi_veff compatibility fixes installed")


def is_installed() -> bool:
    return _INSTALLED
