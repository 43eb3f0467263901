"""Slang code generation for neural materials: an asset's networks become a Slang module with the
weights inlined, and several such modules become one dispatchable set.

Three kinds of generated modules, all written under `cache_dir()/neural/v<GENERATOR_VERSION>/`
(never into the source tree), each named after what it is made of so that the name is unique and a
file, once written, never changes:

- the **asset module** `neural_<name>_<hash>` (hash: sha256 of the generator version, the
  architecture and the fp16 weights; latents do not enter code) defines
  `struct Networks_<hash> : INeuralNetworks` (shaders/neural/neural_material.slang) and
  `typealias NeuralMaterial_<hash> = NeuralMaterial<Networks_<hash>>`: an IMaterial whose instance
  runs these networks. Every function holds both MLP paths of shaders/neural/mlp.slang under
  `#if NEURAL_COOPVEC`: fully unrolled fp32 multiply-adds with each weight a literal constant
  (exactly its fp16 value) on the loop path, `coopLinear` calls on padded fp16 matrices in the
  material's weight buffer on the CoopVec path. On the loop path the latent's share of the
  evaluator's first layer is its own function (`latentTerms`), run once per hit instead of once per
  eval() call.
- the **set module** `neural_set_<hash>` imports the asset modules of N materials and defines
  `struct NeuralSetNetworks_<hash> : INeuralNetworks { uint id; }` whose functions `switch` over
  `id` (the material's index in its NeuralMaterialSet, renderer/neural/material.py) into the
  member networks. All members share one instance layout (latent, frames, the largest
  LatentTerms), so one `NeuralInstance<NeuralSetNetworks_<hash>>` type shades any of them: a path
  tracer instantiates `set.get(id, NeuralSetNetworks_<hash>(id))` at a hit and only the network
  calls branch. Code size grows linearly with N on the loop path (each member's constants are its
  code); on the CoopVec path each case is a few matrix calls on the same buffer.
- the **kernel module** `<module>_kernels` imports an asset or set module plus
  shaders/neural/neural_queries.slang and declares the compute entry points of the batched queries.

Files are written to a temporary name and renamed, so concurrent processes never read half a file.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.atomic_files import atomic_output
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural.asset import DIRECTION_FEATURES, FRAME_OUTPUTS, NeuralAsset
from neumat.renderer.core.paths import SHADER_DIR, cache_dir

GENERATOR_VERSION = 7  # 6: direction encodings and the analytic lobe; 7: the lobe's Fresnel f0, f90
LATENT_CHANNELS = 8  # shaders/neural/neural_material.slang NEURAL_LATENT_CHANNELS
LOBE_OUTPUTS = 6  # shaders/neural/lobe.slang LobeParams.fromOutputs
MAX_LAYERS = 12  # shaders/neural/mlp.slang NEURAL_MAX_LAYERS
INTERLEAVE = 8  # outputs whose multiply-adds the loop path interleaves (_dense)
COOP_ALIGN = 8  # CoopVec rows and columns are padded to multiples of this many halves (16 bytes)
# The decoders' code paths (auto: CoopVec where the device has cooperative vectors, else the loop;
# buffer: shaders/neural/buffer_networks.slang, one module for every asset); here, with no slangpy
# import, so that `neumat render --help` can offer them.
MLP_PATHS = ("auto", "coopvec", "loop", "buffer")
BUFFER_MODULE = "neural.buffer_networks"  # shaders/neural/buffer_networks.slang
BUFFER_MAX_WIDTH = 64  # its BUFFER_MAX_WIDTH
# NeuralRecord.flags bits (shaders/neural/mlp.slang NEURAL_SHAPE_*)
SHAPE_FRAMES, SHAPE_HALF_DIFFERENCE, SHAPE_LOBE = 1, 2, 4

KERNEL_ENTRIES = {
    "evaluate": "neuralEvaluateKernel",
    "sample": "neuralSampleKernel",
    "pdf": "neuralPdfKernel",
    "albedo": "neuralAlbedoKernel",
    "latent": "neuralLatentKernel",
    "shade": "neuralShadeKernel",
}
STAGES = 5  # neural_queries.slang stageQuery: neuralStage<k>Kernel, k < STAGES (benchmark breakdown)


def generated_dir() -> Path:
    """Where generated modules live: cache_dir()/neural/v<GENERATOR_VERSION>."""
    return cache_dir() / "neural" / f"v{GENERATOR_VERSION}"


def _pad(n: int) -> int:
    return -(-n // COOP_ALIGN) * COOP_ALIGN


@dataclass(frozen=True)
class CoopLayer:
    """One layer of the CoopVec weight buffer, in buffer order (the `layer` index of coopLinear)."""

    network: str
    index: int  # layer within its network
    rows: int  # outputs
    cols: int  # inputs
    padded_rows: int
    padded_cols: int
    has_bias: bool


@dataclass(frozen=True)
class GeneratedModule:
    """A generated asset or set module and its kernel module."""

    name: str  # Slang module name
    networks_type: str  # the INeuralNetworks type
    path: Path
    kernels_path: Path
    is_set: bool
    coop_layers: tuple[CoopLayer, ...]  # asset modules: the weight buffer layout; sets: ()
    latent_terms: int  # floats in LatentTerms on the loop path
    members: tuple["GeneratedModule", ...] = ()
    lobe: bool = False  # an asset module with the analytic lobe (sets: any member with one)

    @property
    def directory(self) -> Path:
        return self.path.parent


def coop_layers(asset: NeuralAsset) -> tuple[CoopLayer, ...]:
    """The CoopVec buffer layout of an asset: frames (if any), evaluator, sampler, lobe (if any) layers
    in order."""
    out = []
    for network in ("frames", "evaluator", "sampler", "lobe"):
        if network not in asset.networks:
            continue
        for k, layer in enumerate(asset.networks[network].layers):
            out.append(CoopLayer(network, k, layer.outputs, layer.inputs, _pad(layer.outputs), _pad(layer.inputs),
                                 layer.bias_offset is not None))
    if len(out) > MAX_LAYERS:
        raise NeumatError(f"{asset.path.name}: {len(out)} layers; neural materials support at most {MAX_LAYERS}")
    return tuple(out)


def code_hash(asset: NeuralAsset) -> str:
    """sha256 (hex) of everything the generated code depends on: generator version, architecture,
    fp16 weights."""
    h = hashlib.sha256()
    h.update(f"neumat-neural-codegen {GENERATOR_VERSION}\n".encode())
    arch = {"use_frames": asset.use_frames, "latent_channels": asset.latent_channels,
            "directions": asset.directions, "lobe": asset.lobe,
            "networks": {name: [(l.inputs, l.outputs, l.bias_offset is not None, l.activation) for l in net.layers]
                         for name, net in asset.networks.items()}}
    h.update(json.dumps(arch, sort_keys=True).encode())
    for name in sorted(asset.weights_fp16):
        h.update(name.encode())
        h.update(np.ascontiguousarray(asset.weights_fp16[name], dtype="<f2").tobytes())
    return h.hexdigest()


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:24]
    return s or "material"


def check_supported(asset: NeuralAsset) -> None:
    """NeumatError naming the asset when the runtime cannot run its architecture."""
    where = f"{asset.path.name}/manifest.json"
    if asset.latent_channels != LATENT_CHANNELS:
        raise NeumatError(f"{where}: architecture.latent_channels: {asset.latent_channels}; the Slang runtime "
                          f"supports {LATENT_CHANNELS} latent channels")
    for name in ("evaluator", "sampler"):
        if name not in asset.networks:
            raise NeumatError(f"{where}: networks.{name}: missing")
    ev, sa = asset.networks["evaluator"], asset.networks["sampler"]
    if (ev.inputs, ev.outputs) != (DIRECTION_FEATURES + LATENT_CHANNELS, 3):
        raise NeumatError(f"{where}: networks.evaluator: {ev.inputs} -> {ev.outputs}, expected "
                          f"{DIRECTION_FEATURES + LATENT_CHANNELS} -> 3")
    if (sa.inputs, sa.outputs) != (LATENT_CHANNELS + 3, 9):
        raise NeumatError(f"{where}: networks.sampler: {sa.inputs} -> {sa.outputs}, expected {LATENT_CHANNELS + 3} -> 9")
    if asset.use_frames:
        fr = asset.networks.get("frames")
        if fr is None or len(fr.layers) != 1 or (fr.inputs, fr.outputs) != (LATENT_CHANNELS, 12):
            raise NeumatError(f"{where}: networks.frames: expected one linear layer {LATENT_CHANNELS} -> 12")
    if asset.lobe:
        lo = asset.networks.get("lobe")
        if lo is None or len(lo.layers) != 1 or (lo.inputs, lo.outputs) != (LATENT_CHANNELS, LOBE_OUTPUTS):
            raise NeumatError(f"{where}: networks.lobe: expected one linear layer {LATENT_CHANNELS} -> {LOBE_OUTPUTS}")
    coop_layers(asset)


# --- literal code ---------------------------------------------------------------------------------

def _literal(value: float) -> str:
    """A float literal that parses to exactly `value` (an fp16 value, so exact in fp32 too)."""
    text = repr(float(value))
    return text if ("e" in text or "." in text or "inf" in text or "nan" in text) else text + ".0"


def _dense(lines: list[str], indent: str, out: Sequence[str], inputs: Sequence[str], w: np.ndarray,
           b: np.ndarray | None, relu: bool, declare: bool = True, extra: Sequence[str] | None = None) -> None:
    """Unrolled y = W x (+ b) (+ extra[o]), ReLU'd if asked.

    The multiply-adds are interleaved over blocks of INTERLEAVE outputs (for each input, one
    update of every accumulator in the block): independent dependency chains side by side for a
    CPU driver's JIT (lavapipe: 1.5x faster than one expression per output in an evaluator-only
    kernel, within noise in the full shading query); GPU compilers schedule either form alike.
    Within an output the additions keep their order: bias (and latent terms), then the inputs."""
    n_out = len(out)
    for o, name in enumerate(out):
        start = None
        if extra is not None:
            start = extra[o]
        if b is not None and b[o] != 0.0:
            start = f"{start} + {_literal(b[o])}" if start else _literal(b[o])
        lines.append(f"{indent}{'float ' if declare else ''}{name} = {start or '0.0'};")
    for block in range(0, n_out, INTERLEAVE):
        for i, x in enumerate(inputs):
            for o in range(block, min(block + INTERLEAVE, n_out)):
                v = float(w[o, i])
                if v == 0.0:
                    continue
                op, mag = ("-=", -v) if v < 0 else ("+=", v)
                lines.append(f"{indent}{out[o]} {op} {_literal(mag)} * {x};")
    if relu:
        for name in out:
            lines.append(f"{indent}{name} = relu({name});")


def _coop_fill(lines: list[str], indent: str, var: str, width: int, sources: Sequence[tuple[str, int]]) -> None:
    """var = CoopVec<half, width> holding the given (array expression, length) pieces, zero padded."""
    lines.append(f"{indent}CoopVec<half, {width}> {var} = CoopVec<half, {width}>(half(0.0));")
    at = 0
    for expr, n in sources:
        lines.append(f"{indent}[ForceUnroll] for (int i = 0; i < {n}; i++) {var}[{at} + i] = half({expr}[i]);")
        at += n


def _coop_chain(lines: list[str], indent: str, x: str, layers: Sequence[CoopLayer], first: int) -> str:
    """Emits the CoopVec layers of one network on input vector `x`; returns the output's name."""
    for k, layer in enumerate(layers):
        call = "coopLinear" if layer.has_bias else "coopLinearNoBias"
        expr = f"{call}<{layer.padded_rows}, {layer.padded_cols}>({x}, w, {first + k})"
        if k < len(layers) - 1:
            expr = f"coopRelu({expr})"
        x = f"h{k + 1}"
        lines.append(f"{indent}let {x} = {expr};")
    return x


def _latent_linear(L: list[str], asset: NeuralAsset, network: str, outputs: int, layers, first) -> None:
    """The body of a one-layer network on the latent (frames, lobe) into `raw[outputs]`: CoopVec
    or inlined multiply-adds (the frames' layer has no bias)."""
    (w, b), = asset.layer_arrays(network, "fp16")
    L.append("#if NEURAL_COOPVEC")
    _coop_fill(L, "        ", "x", _pad(LATENT_CHANNELS), [("latent", LATENT_CHANNELS)])
    y = _coop_chain(L, "        ", "x", [l for l in layers if l.network == network], first[network])
    L.append(f"        [ForceUnroll] for (int i = 0; i < {outputs}; i++) raw[i] = float({y}[i]);")
    L.append("#else")
    _dense(L, "        ", [f"raw[{o}]" for o in range(outputs)], [f"latent[{i}]" for i in range(LATENT_CHANNELS)],
           w, b, relu=False, declare=False)
    L.append("#endif")


def asset_module_source(asset: NeuralAsset, name: str, suffix: str) -> str:
    check_supported(asset)
    layers = coop_layers(asset)
    first = {}
    for i, layer in enumerate(layers):
        first.setdefault(layer.network, i)
    nets = "Networks_" + suffix
    terms = "Terms_" + suffix
    ev = asset.layer_arrays("evaluator", "fp16")
    sa = asset.layer_arrays("sampler", "fp16")
    h1 = ev[0][0].shape[0]
    L: list[str] = []
    add = L.append
    add(f"// Generated by renderer/neural/codegen.py (generator version {GENERATOR_VERSION}) from the neural asset")
    add(f"// '{asset.name}' ({asset.path.name}): evaluator {asset.network}, frames "
        f"{'on' if asset.use_frames else 'off'}, directions {asset.directions}. Do not edit; delete the file to "
        "regenerate it.")
    add("// Weights are the asset's fp16 values: literal constants on the loop path, the material's weight")
    add("// buffer on the CoopVec path (shaders/neural/mlp.slang).")
    add(f"module {name};")
    add("")
    add("import neural.mlp;")
    add("import neural.neural_material;")
    add("")
    add("#if NEURAL_COOPVEC")
    add(f"public struct {terms} {{ public uint unused; }};")
    add("#else")
    add(f"public struct {terms} {{ public float v[{h1}]; }};")
    add("#endif")
    add("")
    add(f"public struct {nets} : INeuralNetworks")
    add("{")
    add(f"    public typealias LatentTerms = {terms};")
    add("")
    add(f"    public bool hasFrames() {{ return {'true' if asset.use_frames else 'false'}; }}")
    add(f"    public bool halfDifference(NeuralWeights w) {{ return {'true' if asset.directions == 'half_difference' else 'false'}; }}")
    add(f"    public bool hasLobe() {{ return {'true' if asset.lobe else 'false'}; }}")
    add("")
    # lobe
    add(f"    public void lobe(NeuralWeights w, float latent[8], out float raw[{LOBE_OUTPUTS}])")
    add("    {")
    if asset.lobe:
        _latent_linear(L, asset, "lobe", LOBE_OUTPUTS, layers, first)
    else:
        add(f"        [ForceUnroll] for (int i = 0; i < {LOBE_OUTPUTS}; i++) raw[i] = i < 4 ? -1e4 : 0.0; // f90, f0 0: no lobe")
    add("    }")
    add("")
    # frames
    add("    public void frames(NeuralWeights w, float latent[8], out float raw[12])")
    add("    {")
    if asset.use_frames:
        _latent_linear(L, asset, "frames", FRAME_OUTPUTS, layers, first)
    else:
        add("        [ForceUnroll] for (int i = 0; i < 12; i++) raw[i] = 0.0;")
    add("    }")
    add("")
    # latent terms
    w1, b1 = ev[0]
    add(f"    public {terms} latentTerms(NeuralWeights w, float latent[8])")
    add("    {")
    add(f"        {terms} t;")
    add("#if NEURAL_COOPVEC")
    add("        t.unused = 0;")
    add("#else")
    _dense(L, "        ", [f"t.v[{o}]" for o in range(h1)], [f"latent[{i}]" for i in range(LATENT_CHANNELS)],
           w1[:, DIRECTION_FEATURES:], b1, relu=False, declare=False)
    add("#endif")
    add("        return t;")
    add("    }")
    add("")
    # evaluator
    add(f"    public float3 evaluator(NeuralWeights w, {terms} terms, float latent[8], float features[12])")
    add("    {")
    add("#if NEURAL_COOPVEC")
    _coop_fill(L, "        ", "x", _pad(DIRECTION_FEATURES + LATENT_CHANNELS),
               [("features", DIRECTION_FEATURES), ("latent", LATENT_CHANNELS)])
    y = _coop_chain(L, "        ", "x", [l for l in layers if l.network == "evaluator"], first["evaluator"])
    add(f"        return float3(float({y}[0]), float({y}[1]), float({y}[2]));")
    add("#else")
    prev = [f"features[{i}]" for i in range(DIRECTION_FEATURES)]
    for k, (w, b) in enumerate(ev):
        last = k == len(ev) - 1
        out = [f"e{k + 1}_{o}" for o in range(w.shape[0])]
        if k == 0:
            _dense(L, "        ", out, prev, w[:, :DIRECTION_FEATURES], None, relu=True,
                   extra=[f"terms.v[{o}]" for o in range(h1)])
        else:
            _dense(L, "        ", out, prev, w, b, relu=not last)
        prev = out
    add(f"        return float3({', '.join(prev)});")
    add("#endif")
    add("    }")
    add("")
    # sampler
    add("    public void sampler(NeuralWeights w, float latent[8], float3 wi, out float raw[9])")
    add("    {")
    add("        float input[3] = { wi.x, wi.y, wi.z };")
    add("#if NEURAL_COOPVEC")
    _coop_fill(L, "        ", "x", _pad(LATENT_CHANNELS + 3), [("latent", LATENT_CHANNELS), ("input", 3)])
    y = _coop_chain(L, "        ", "x", [l for l in layers if l.network == "sampler"], first["sampler"])
    add(f"        [ForceUnroll] for (int i = 0; i < 9; i++) raw[i] = float({y}[i]);")
    add("#else")
    prev = [f"latent[{i}]" for i in range(LATENT_CHANNELS)] + [f"input[{i}]" for i in range(3)]
    for k, (w, b) in enumerate(sa):
        last = k == len(sa) - 1
        out = [f"raw[{o}]" for o in range(w.shape[0])] if last else [f"s{k + 1}_{o}" for o in range(w.shape[0])]
        _dense(L, "        ", out, prev, w, b, relu=not last, declare=not last)
        prev = out
    add("#endif")
    add("    }")
    add("};")
    add("")
    add(f"public typealias NeuralMaterial_{suffix} = NeuralMaterial<{nets}>;")
    add(f"public typealias NeuralInstance_{suffix} = NeuralInstance<{nets}>;")
    return "\n".join(L) + "\n"


def set_module_source(name: str, suffix: str, members: Sequence[GeneratedModule]) -> str:
    nets = "NeuralSetNetworks_" + suffix
    terms = "NeuralSetTerms_" + suffix
    width = max(1, max(m.latent_terms for m in members))
    L: list[str] = []
    add = L.append
    add(f"// Generated by renderer/neural/codegen.py (generator version {GENERATOR_VERSION}): {len(members)} neural")
    add("// materials behind one INeuralNetworks type; `id` is the material's index in its NeuralMaterialSet.")
    add("// Do not edit; delete the file to regenerate it.")
    add(f"module {name};")
    add("")
    add("import neural.mlp;")
    add("import neural.neural_material;")
    for m in dict.fromkeys(m.name for m in members):
        add(f"import {m};")
    add("")
    add("#if NEURAL_COOPVEC")
    add(f"public struct {terms} {{ public uint unused; }};")
    add("#else")
    add(f"public struct {terms} {{ public float v[{width}]; }};")
    add("#endif")
    add("")
    add(f"public struct {nets} : INeuralNetworks")
    add("{")
    add("    public uint id;")
    add("")
    add("    public __init(uint id) { this.id = id; }")
    add("")
    add(f"    public typealias LatentTerms = {terms};")
    add("")
    add("    public bool hasFrames() { return true; } // members without frames return zero offsets")
    add("")
    add("    public bool halfDifference(NeuralWeights w)")
    add("    {")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        add(f"        case {k}: {{ {m.networks_type} n; return n.halfDifference(w); }}")
    add("        default: return false;")
    add("        }")
    add("    }")
    add("")
    add(f"    public bool hasLobe() {{ return {'true' if any(m.lobe for m in members) else 'false'}; }}")
    add("")
    add(f"    public void lobe(NeuralWeights w, float latent[8], out float raw[{LOBE_OUTPUTS}])")
    add("    {")
    add(f"        [ForceUnroll] for (int i = 0; i < {LOBE_OUTPUTS}; i++) raw[i] = i < 4 ? -1e4 : 0.0; // f90, f0 0 unless the member has a lobe")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        if m.lobe:
            add(f"        case {k}: {{ {m.networks_type} n; n.lobe(w, latent, raw); break; }}")
    add("        default: break;")
    add("        }")
    add("    }")
    add("")
    add("    public void frames(NeuralWeights w, float latent[8], out float raw[12])")
    add("    {")
    add("        [ForceUnroll] for (int i = 0; i < 12; i++) raw[i] = 0.0;")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        add(f"        case {k}: {{ {m.networks_type} n; n.frames(w, latent, raw); break; }}")
    add("        default: break;")
    add("        }")
    add("    }")
    add("")
    add(f"    public {terms} latentTerms(NeuralWeights w, float latent[8])")
    add("    {")
    add(f"        {terms} t;")
    add("#if NEURAL_COOPVEC")
    add("        t.unused = 0;")
    add("#else")
    add(f"        [ForceUnroll] for (int i = 0; i < {width}; i++) t.v[i] = 0.0;")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        add(f"        case {k}: {{ {m.networks_type} n; let u = n.latentTerms(w, latent); "
            f"[ForceUnroll] for (int i = 0; i < {m.latent_terms}; i++) t.v[i] = u.v[i]; break; }}")
    add("        default: break;")
    add("        }")
    add("#endif")
    add("        return t;")
    add("    }")
    add("")
    add(f"    public float3 evaluator(NeuralWeights w, {terms} terms, float latent[8], float features[12])")
    add("    {")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        add(f"        case {k}:")
        add("        {")
        add(f"            {m.networks_type} n;")
        add(f"            {m.networks_type}.LatentTerms u;")
        add("#if NEURAL_COOPVEC")
        add("            u.unused = 0;")
        add("#else")
        add(f"            [ForceUnroll] for (int i = 0; i < {m.latent_terms}; i++) u.v[i] = terms.v[i];")
        add("#endif")
        add("            return n.evaluator(w, u, latent, features);")
        add("        }")
    add("        default: return float3(-1e4); // exp(-1e4 - 3) = 0: an unknown id is black")
    add("        }")
    add("    }")
    add("")
    add("    public void sampler(NeuralWeights w, float latent[8], float3 wi, out float raw[9])")
    add("    {")
    add("        [ForceUnroll] for (int i = 0; i < 9; i++) raw[i] = 0.0;")
    add("        switch (id)")
    add("        {")
    for k, m in enumerate(members):
        add(f"        case {k}: {{ {m.networks_type} n; n.sampler(w, latent, wi, raw); break; }}")
    add("        default: break;")
    add("        }")
    add("    }")
    add("};")
    add("")
    add(f"public typealias NeuralSetMaterial_{suffix} = NeuralMaterial<{nets}>;")
    add(f"public typealias NeuralSetInstance_{suffix} = NeuralInstance<{nets}>;")
    return "\n".join(L) + "\n"


def kernels_source(module: GeneratedModule) -> str:
    make = f"{module.networks_type}(id)" if module.is_set else f"{module.networks_type}()"
    L = [f"// Generated by renderer/neural/codegen.py (generator version {GENERATOR_VERSION}): the batched query",
         f"// kernels (shaders/neural/neural_queries.slang) of {module.name}. Do not edit.",
         f"module {module.kernels_path.stem};",
         "",
         "import neural.neural_material;",
         "import neural.neural_queries;",
         f"import {module.name};",
         "",
         f"{module.networks_type} networksFor(uint id) {{ return {make}; }}",
         ""]
    for kind, entry in KERNEL_ENTRIES.items():
        L += ["[shader(\"compute\")]",
              "[numthreads(64, 1, 1)]",
              f"void {entry}(uint3 tid: SV_DispatchThreadID)",
              "{",
              "    uint i = tid.x;",
              "    if (i >= count)",
              "        return;",
              "    uint id = queryMaterial(i);"]
        if kind == "shade":
            L.append("    shadeQuery(i, materials.get(id, networksFor(id)));")
        else:
            L.append(f"    {kind}Query(i, networksFor(id));")
        L += ["}", ""]
    for stage in range(STAGES):
        L += ["[shader(\"compute\")]",
              "[numthreads(64, 1, 1)]",
              f"void neuralStage{stage}Kernel(uint3 tid: SV_DispatchThreadID)",
              "{",
              "    uint i = tid.x;",
              "    if (i >= count)",
              "        return;",
              f"    stageQuery<{module.networks_type}, {stage}>(i, networksFor(queryMaterial(i)));",
              "}",
              ""]
    return "\n".join(L)


# --- files ----------------------------------------------------------------------------------------

def _write_once(path: Path, text: str) -> None:
    """Writes `text` to `path` unless it already holds exactly that (atomic rename)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def generate_module(asset: NeuralAsset, directory: Path | None = None) -> GeneratedModule:
    """The asset module (and its kernel module) for an asset, generated unless already cached."""
    check_supported(asset)
    digest = code_hash(asset)
    suffix = digest[:16]
    name = f"neural_{_slug(asset.name)}_{suffix}"
    directory = Path(directory) if directory is not None else generated_dir()
    path = directory / f"{name}.slang"
    ev_first = asset.networks["evaluator"].layers[0]
    module = GeneratedModule(name=name, networks_type=f"Networks_{suffix}", path=path,
                             kernels_path=directory / f"{name}_kernels.slang", is_set=False,
                             coop_layers=coop_layers(asset), latent_terms=ev_first.outputs, lobe=asset.lobe)
    if not path.is_file():
        _write_once(path, asset_module_source(asset, name, suffix))
    _write_once(module.kernels_path, kernels_source(module))
    return module


def buffer_module(directory: Path | None = None) -> GeneratedModule:
    """The buffer path's networks (a fixed module under shaders/) and its generated kernel module:
    the same for every set of materials, so compiled once."""
    directory = Path(directory) if directory is not None else generated_dir()
    module = GeneratedModule(name=BUFFER_MODULE, networks_type="BufferNetworks",
                             path=SHADER_DIR / "neural" / "buffer_networks.slang",
                             kernels_path=directory / "neural_buffer_kernels.slang", is_set=True, coop_layers=(),
                             latent_terms=BUFFER_MAX_WIDTH, lobe=True)
    _write_once(module.kernels_path, kernels_source(module))
    return module


def check_buffer_supported(asset: NeuralAsset) -> None:
    """NeumatError naming the asset when the buffer path cannot run its networks: hidden layers of
    one width each, at most BUFFER_MAX_WIDTH."""
    for name in ("evaluator", "sampler"):
        widths = {layer.outputs for layer in asset.networks[name].layers[:-1]}
        if len(widths) > 1 or max(widths, default=0) > BUFFER_MAX_WIDTH:
            raise NeumatError(f"{asset.path.name}: networks.{name}: hidden widths {sorted(widths)}; the buffer MLP "
                              f"path runs one width of at most {BUFFER_MAX_WIDTH} (use mlp 'loop')")


def shape_words(asset: NeuralAsset) -> tuple[int, int]:
    """(flags, sizes) of a material's NeuralRecord (shaders/neural/mlp.slang NeuralWeights)."""
    flags = ((SHAPE_FRAMES if asset.use_frames else 0)
             | (SHAPE_HALF_DIFFERENCE if asset.directions == "half_difference" else 0)
             | (SHAPE_LOBE if asset.lobe else 0))
    sizes = 0
    for shift, name in ((0, "evaluator"), (16, "sampler")):
        layers = asset.networks[name].layers
        sizes |= ((len(layers) - 1) | (layers[0].outputs << 8)) << shift
    return flags, sizes


def generate_set(members: Sequence[GeneratedModule], directory: Path | None = None) -> GeneratedModule:
    """The set module over asset modules (material id k = members[k]) and its kernel module."""
    if not members:
        raise ValueError("a neural material set needs at least one material")
    if any(m.is_set for m in members):
        raise ValueError("the members of a set are asset modules")
    digest = hashlib.sha256(f"set {GENERATOR_VERSION}\n{chr(10).join(m.name for m in members)}".encode()).hexdigest()
    suffix = digest[:16]
    name = f"neural_set_{suffix}"
    directory = Path(directory) if directory is not None else members[0].directory
    module = GeneratedModule(name=name, networks_type=f"NeuralSetNetworks_{suffix}", path=directory / f"{name}.slang",
                             kernels_path=directory / f"{name}_kernels.slang", is_set=True, coop_layers=(),
                             latent_terms=max(m.latent_terms for m in members), members=tuple(members),
                             lobe=any(m.lobe for m in members))
    _write_once(module.path, set_module_source(name, suffix, members))
    _write_once(module.kernels_path, kernels_source(module))
    return module
