#!/usr/bin/env python3
"""Generates the rasn bindings (rsu/uper/src/generated.rs) from the transcribed T/CSAE 53-2020
ASN.1 modules in rsu/uper/asn1/, parsed with asn1tools.

    python3 rsu/uper/tools/gen_rasn.py            # rewrite src/generated.rs
    python3 rsu/uper/tools/gen_rasn.py --check    # exit 1 when src/generated.rs is stale

Every ASN.1 type becomes one Rust type of the same name (hyphens removed), every component and
alternative keeps its ASN.1 identifier (so rasn's JER output names fields as the standard does).
Only the ASN.1 features the modules use are handled: INTEGER ranges, SEQUENCE (OPTIONAL,
extension marker at the end), SEQUENCE OF with SIZE, CHOICE, ENUMERATED, BIT STRING and OCTET
STRING with SIZE, IA5String with SIZE, and INTEGER value assignments (as constants). Anything
else stops the generator with an error rather than producing a wrong binding.
"""

import glob
import keyword
import os
import re
import sys

import asn1tools

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
ASN1_DIR = os.path.join(CRATE, "asn1")
OUT = os.path.join(CRATE, "src", "generated.rs")

RUST_KEYWORDS = {"type", "loop", "mod", "move", "ref", "self", "super", "match", "use", "where", "fn", "impl"}


def rust_type_name(asn_name):
    return asn_name.replace("-", "")


def snake(asn_name):
    s = asn_name.replace("-", "_")
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = s.lower()
    s = re.sub(r"_+", "_", s)
    if s in RUST_KEYWORDS or keyword.iskeyword(s):
        s += "_"
    return s


def pascal(asn_name):
    # A hyphen between digits stays visible ("prec0-1deg" is not "prec01deg").
    asn_name = re.sub(r"(?<=[0-9])-(?=[0-9])", "_", asn_name)
    parts = re.split(r"-", asn_name)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
    if name[0].isdigit():
        name = "V" + name
    return name


def upper_snake(asn_name):
    return snake(asn_name).rstrip("_").upper()


def int_type(lo, hi):
    for ty, (a, b) in [
        ("u8", (0, 255)),
        ("i8", (-128, 127)),
        ("u16", (0, 65535)),
        ("i16", (-32768, 32767)),
        ("u32", (0, 2**32 - 1)),
        ("i32", (-(2**31), 2**31 - 1)),
    ]:
        if a <= lo and hi <= b:
            return ty
    raise SystemExit(f"no Rust integer for {lo}..{hi}")


def one_range(constraint, what):
    if not constraint or len(constraint) != 1:
        raise SystemExit(f"{what}: expected one range, got {constraint!r}")
    r = constraint[0]
    if isinstance(r, tuple) or isinstance(r, list):
        return r[0], r[1]
    return r, r


def size_attr(size, what):
    """The rasn size constraint of an asn1tools SIZE list."""
    extensible = len(size) == 2 and size[1] is None
    if extensible:
        size = size[:1]
    lo, hi = one_range(size, what)
    text = f'"{lo}"' if lo == hi else f'"{lo}..={hi}"'
    return f"size({text}, extensible)" if extensible else f"size({text})"


def value_attr(restricted, what):
    lo, hi = one_range(restricted, what)
    return f'value("{lo}..={hi}")', int_type(lo, hi)


def member_type(member, owner):
    """The Rust type of a component or alternative, and its extra rasn constraint attributes."""
    t = member["type"]
    what = f"{owner}.{member['name']}"
    if t == "INTEGER":
        attr, ty = value_attr(member.get("restricted-to"), what)
        return ty, [attr]
    if t == "OCTET STRING":
        size = member.get("size")
        if size and len(size) == 1 and not isinstance(size[0], (tuple, list)):
            return f"FixedOctetString<{size[0]}>", []
        return "OctetString", [size_attr(size, what)]
    if t == "IA5String":
        return "Ia5String", [size_attr(member["size"], what)]
    if t in ("SEQUENCE", "CHOICE", "ENUMERATED", "SEQUENCE OF", "BIT STRING"):
        raise SystemExit(f"{what}: inline {t} is not supported")
    return rust_type_name(t), []


def doc(line, indent=""):
    return f"{indent}/// {line}\n"


def gen_type(module, name, spec, values):
    rname = rust_type_name(name)
    kind = spec["type"]
    out = []
    header = f"`{name}` (module `{module}`)."
    if kind == "INTEGER":
        attr, ty = value_attr(spec.get("restricted-to"), name)
        out.append(doc(f"INTEGER {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]\n")
        out.append(f'#[rasn(delegate, {attr}, identifier = "{name}")]\n')
        out.append(f"pub struct {rname}(pub {ty});\n")
        consts = [(v, d["value"]) for v, d in values.items() if d["type"] == name]
        if consts:
            out.append(f"\nimpl {rname} {{\n")
            for vname, v in consts:
                out.append(doc(f"`{vname}`.", "    "))
                out.append(f"    pub const {upper_snake(vname)}: {rname} = {rname}({v});\n")
            out.append("}\n")
    elif kind == "SEQUENCE":
        members = spec["members"]
        extensible = None in members
        out.append(doc(f"SEQUENCE {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq)]\n")
        out.append(f'#[rasn(automatic_tags, identifier = "{name}")]\n')
        if extensible:
            out.append("#[non_exhaustive]\n")
        out.append(f"pub struct {rname} {{\n")
        for m in members:
            if m is None:
                continue
            ty, attrs = member_type(m, name)
            if m.get("default") is not None:
                raise SystemExit(f"{name}.{m['name']}: DEFAULT is not supported")
            optional = m.get("optional", False)
            out.append(doc(f"`{m['name']}`{' (OPTIONAL)' if optional else ''}.", "    "))
            attrs = [f'identifier = "{m["name"]}"'] + attrs
            out.append(f"    #[rasn({', '.join(attrs)})]\n")
            ty = f"Option<{ty}>" if optional else ty
            out.append(f"    pub {snake(m['name'])}: {ty},\n")
        out.append("}\n")
    elif kind == "SEQUENCE OF":
        elem = spec["element"]
        if elem["type"] in ("SEQUENCE", "CHOICE", "ENUMERATED", "INTEGER"):
            raise SystemExit(f"{name}: inline element type")
        out.append(doc(f"SEQUENCE OF {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq)]\n")
        out.append(f'#[rasn(delegate, {size_attr(spec["size"], name)}, identifier = "{name}")]\n')
        out.append(f"pub struct {rname}(pub SequenceOf<{rust_type_name(elem['type'])}>);\n")
    elif kind == "CHOICE":
        members = spec["members"]
        extensible = None in members
        out.append(doc(f"CHOICE {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq)]\n")
        out.append(f'#[rasn(choice, automatic_tags, identifier = "{name}")]\n')
        if extensible:
            out.append("#[non_exhaustive]\n")
        out.append(f"pub enum {rname} {{\n")
        for m in members:
            if m is None:
                continue
            ty, attrs = member_type(m, name)
            out.append(doc(f"`{m['name']}`.", "    "))
            attrs = [f'identifier = "{m["name"]}"'] + attrs
            out.append(f"    #[rasn({', '.join(attrs)})]\n")
            out.append(f"    {pascal(m['name'])}({ty}),\n")
        out.append("}\n")
    elif kind == "ENUMERATED":
        items = spec["values"]
        extensible = None in items
        out.append(doc(f"ENUMERATED {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Copy, Debug, PartialEq, Eq, Hash)]\n")
        out.append(f'#[rasn(enumerated, identifier = "{name}")]\n')
        if extensible:
            out.append("#[non_exhaustive]\n")
        out.append(f"pub enum {rname} {{\n")
        for item in items:
            if item is None:
                continue
            vname, number = item
            out.append(doc(f"`{vname}` ({number}).", "    "))
            out.append(f'    #[rasn(identifier = "{vname}")]\n')
            out.append(f"    {pascal(vname)} = {number},\n")
        out.append("}\n")
    elif kind == "BIT STRING":
        bits = spec.get("named-bits", [])
        out.append(doc(f"BIT STRING {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq, Hash)]\n")
        out.append(f'#[rasn(delegate, {size_attr(spec["size"], name)}, identifier = "{name}")]\n')
        out.append(f"pub struct {rname}(pub BitString);\n")
        if bits:
            out.append(f"\nimpl {rname} {{\n")
            for bname, pos in bits:
                out.append(doc(f"Bit `{bname}`.", "    "))
                out.append(f"    pub const {upper_snake(bname)}: usize = {pos};\n")
            out.append("}\n")
    elif kind == "IA5String":
        out.append(doc(f"IA5String {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq, Hash)]\n")
        out.append(f'#[rasn(delegate, {size_attr(spec["size"], name)}, identifier = "{name}")]\n')
        out.append(f"pub struct {rname}(pub Ia5String);\n")
    elif kind == "OCTET STRING":
        ty, _ = member_type({"type": "OCTET STRING", "size": spec["size"], "name": name}, name)
        if not ty.startswith("Fixed"):
            raise SystemExit(f"{name}: only fixed-size OCTET STRING types are supported")
        out.append(doc(f"OCTET STRING {header}"))
        out.append("#[derive(AsnType, Encode, Decode, Clone, Debug, PartialEq, Eq, Hash)]\n")
        out.append(f'#[rasn(delegate, identifier = "{name}")]\n')
        out.append(f"pub struct {rname}(pub {ty});\n")
    else:
        raise SystemExit(f"{name}: {kind} is not supported")
    return "".join(out)


def generate():
    files = sorted(glob.glob(os.path.join(ASN1_DIR, "*.asn")))
    parsed = asn1tools.parse_files(files)
    parts = [
        "//! rasn bindings of the T/CSAE 53-2020 ASN.1 modules in `rsu/uper/asn1/`, generated by\n",
        "//! `rsu/uper/tools/gen_rasn.py` (do not edit: change the generator or the modules and rerun\n",
        "//! it; the test `generated_bindings_are_current` checks the file is current).\n\n",
        "#![allow(clippy::upper_case_acronyms, clippy::large_enum_variant)]\n\n",
        "use rasn::prelude::*;\n",
    ]
    for module in sorted(parsed):
        spec = parsed[module]
        parts.append(f"\n// ---- module {module}\n")
        for name in spec["types"]:
            parts.append("\n")
            parts.append(gen_type(module, name, spec["types"][name], spec.get("values", {})))
    return "".join(parts)


def main():
    text = generate()
    if "--check" in sys.argv[1:]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUT} is stale: run python3 rsu/uper/tools/gen_rasn.py", file=sys.stderr)
                sys.exit(1)
        print(f"{OUT} is current")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
