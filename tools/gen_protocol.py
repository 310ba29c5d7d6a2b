#!/usr/bin/env python3
"""Generates Gregor's Kafka protocol code from the schemas in schemas/.

Usage: gen_protocol.py --schemas <dir> --out <dir>

Reads schemas/api/*.schema (one API each: request and response), schemas/metadata/
*.schema, schemas/group/*.schema and schemas/txn/*.schema (data records), in the format described in
schemas/README.md, and writes C++ into <out>:

  api/<name>.h, api/<name>.cc       <name>_request and <name>_response
  metadata/<name>.h/.cc, group/..., txn/...  one record struct each
  apis.h, apis.cc                   GREGOR_PROTOCOL_APIS, the API table, header versions
  messages.h                        includes everything; GREGOR_PROTOCOL_MESSAGES
  samples.h, samples.cc             fill_sample() for tests: a populated value per version

Every struct gets decode/encode/size for a version. Files are only rewritten when
their content changes, so editing one schema recompiles one API.

Standard library only; runs at build time.
"""

import argparse
import os
import re
import sys

# ---------------------------------------------------------------------------------
# Schema model
# ---------------------------------------------------------------------------------

# name -> (C++ type, fixed wire size, reader/writer suffix)
FIXED = {
    "int8": ("int8_t", 1, "int8"),
    "int16": ("int16_t", 2, "int16"),
    "int32": ("int32_t", 4, "int32"),
    "int64": ("int64_t", 8, "int64"),
    "uint16": ("uint16_t", 2, "uint16"),
    "float64": ("double", 8, "float64"),
    "bool": ("bool", 1, "bool"),
    "uuid": ("::gregor::protocol::uuid", 16, "uuid"),
}
VARIABLE = {"string", "bytes", "records"}
INTEGER_LIMITS = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
}
MAX_VERSION = 0x7FFF

CPP_KEYWORDS = set(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast
    continue co_await co_return co_yield decltype default delete do double dynamic_cast else
    enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq""".split()
)
# Members generated code adds itself. (Generated functions refer to fields as
# this->name, so parameters and locals never shadow them.)
RESERVED_NAMES = {"decode", "encode", "size", "unknown_tagged_fields"}
# Static members of a message's top-level struct.
MESSAGE_CONSTANTS = {"api_key", "record_type", "min_version", "max_version", "first_flexible_version"}


class SchemaError(Exception):
    pass


class Versions:
    """A closed version range [lo, hi]; empty when lo > hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    @staticmethod
    def parse(text, where):
        if text == "none":
            return Versions(1, 0)
        m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text)
        if not m:
            raise SchemaError(f"{where}: bad version range '{text}'")
        lo = int(m.group(1))
        if m.group(2) == "+":
            return Versions(lo, MAX_VERSION)
        if m.group(3) is not None:
            hi = int(m.group(3))
            if hi < lo:
                raise SchemaError(f"{where}: empty version range '{text}'")
            return Versions(lo, hi)
        return Versions(lo, lo)

    def empty(self):
        return self.lo > self.hi

    def __and__(self, o):
        return Versions(max(self.lo, o.lo), min(self.hi, o.hi))

    def hull(self, o):
        if self.empty():
            return o
        if o.empty():
            return self
        return Versions(min(self.lo, o.lo), max(self.hi, o.hi))

    def covers(self, o):
        return o.empty() or (self.lo <= o.lo and o.hi <= self.hi)

    def __contains__(self, v):
        return self.lo <= v <= self.hi

    def __eq__(self, o):
        return (self.empty() and o.empty()) or (self.lo, self.hi) == (o.lo, o.hi)

    def __repr__(self):
        return "none" if self.empty() else f"{self.lo}-{self.hi}"


def cond(versions, within):
    """A C++ condition that is true for `versions`, given the version is already known
    to be in `within`. Returns "true"/"false" when it does not depend on the version."""
    v = versions & within
    if v.empty():
        return "false"
    if v == within:
        return "true"
    # A range that runs to the end of `within` is written open-ended (version >= N),
    # like the schema's "N+".
    if v.lo == v.hi and v.hi < within.hi:
        return f"version == {v.lo}"
    parts = []
    if v.lo > within.lo:
        parts.append(f"version >= {v.lo}")
    if v.hi < within.hi:
        parts.append(f"version <= {v.hi}")
    return " && ".join(parts)


class Type:
    """kind: 'fixed' (FIXED names), 'string', 'bytes', 'records', 'struct', 'array'."""

    def __init__(self, kind, name=None, elem=None):
        self.kind, self.name, self.elem = kind, name, elem
        self.struct = None  # resolved Struct for 'struct'

    @staticmethod
    def parse(text, where):
        if text.startswith("[]"):
            elem = Type.parse(text[2:], where)
            if elem.kind in ("array", "records"):
                raise SchemaError(f"{where}: arrays of {elem.kind} are not supported")
            return Type("array", elem=elem)
        if text in FIXED:
            return Type("fixed", name=text)
        if text in VARIABLE:
            return Type(text)
        if re.fullmatch(r"[a-z][a-z0-9_]*", text):
            return Type("struct", name=text)
        raise SchemaError(f"{where}: bad type '{text}'")

    def struct_type(self):
        """The struct-kind Type inside this one (itself, or an array's elements), or None."""
        if self.kind == "struct":
            return self
        if self.kind == "array" and self.elem.kind == "struct":
            return self.elem
        return None


class Field:
    def __init__(self, name, type_, versions, where):
        self.name, self.type, self.versions, self.where = name, type_, versions, where
        self.nullable = Versions(1, 0)
        self.default = None
        self.tag = None
        self.inline_fields = []  # fields declared under this one (its struct's)


class Struct:
    def __init__(self, name, fields, where):
        self.name, self.fields, self.where = name, fields, where
        self.hull = Versions(1, 0)  # versions in which the struct is encoded at all


class Message:
    """One generated top-level struct: a request, a response or a record."""

    def __init__(self, cpp_name, role, fields, schema):
        self.cpp_name, self.role, self.schema = cpp_name, role, schema
        self.root = Struct(cpp_name, fields, schema.path)
        self.structs = []  # nested structs, inner before outer


class Schema:
    def __init__(self, path, group):
        self.path, self.group = path, group  # group: 'api', 'metadata', 'group'
        self.kind = None  # 'api' | 'record'
        self.name = None
        self.key = None
        self.versions = None
        self.flexible = Versions(1, 0)
        self.blocks = {}  # 'request'/'response'/'record' -> fields
        self.common = {}  # struct name -> fields
        self.messages = []


# ---------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------


def parse_attrs(tokens, where):
    attrs = {}
    for t in tokens:
        if "=" not in t:
            raise SchemaError(f"{where}: expected key=value, got '{t}'")
        k, v = t.split("=", 1)
        if k in attrs:
            raise SchemaError(f"{where}: '{k}' given twice")
        attrs[k] = v
    return attrs


def parse_schema(path, group):
    s = Schema(path, group)
    stack = None  # [(indent, field list)]
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for lineno, raw in enumerate(lines, 1):
        where = f"{path}:{lineno}"
        if "\t" in raw:
            raise SchemaError(f"{where}: tabs are not allowed; indent with spaces")
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        tokens = line.split()
        if indent == 0:
            stack = None
            d = tokens[0]
            if d in ("api", "record"):
                if s.kind:
                    raise SchemaError(f"{where}: one api or record per file")
                if len(tokens) < 2:
                    raise SchemaError(f"{where}: '{d}' needs a name")
                s.kind, s.name = d, tokens[1]
                attrs = parse_attrs(tokens[2:], where)
                allowed = {"key", "versions", "flexible"} if d == "api" else {"type", "versions", "flexible"}
                if set(attrs) - allowed:
                    raise SchemaError(f"{where}: unknown attributes {sorted(set(attrs) - allowed)}")
                if "versions" not in attrs or "flexible" not in attrs:
                    raise SchemaError(f"{where}: versions= and flexible= are required")
                if d == "api" and "key" not in attrs:
                    raise SchemaError(f"{where}: key= is required")
                key = attrs.get("key", attrs.get("type"))
                s.key = int(key) if key is not None else None
                s.versions = Versions.parse(attrs["versions"], where)
                s.flexible = Versions.parse(attrs["flexible"], where)
                if d == "record":
                    s.blocks["record"] = []
                    stack = [(0, s.blocks["record"])]
            elif d in ("request", "response"):
                if s.kind != "api" or len(tokens) != 1:
                    raise SchemaError(f"{where}: '{d}' belongs in an api file, on its own line")
                if d in s.blocks:
                    raise SchemaError(f"{where}: second '{d}' block")
                s.blocks[d] = []
                stack = [(0, s.blocks[d])]
            elif d == "struct":
                if len(tokens) != 2:
                    raise SchemaError(f"{where}: 'struct <name>'")
                if tokens[1] in s.common:
                    raise SchemaError(f"{where}: struct '{tokens[1]}' defined twice")
                s.common[tokens[1]] = []
                stack = [(0, s.common[tokens[1]])]
            else:
                raise SchemaError(f"{where}: unknown directive '{d}'")
            continue
        if stack is None:
            raise SchemaError(f"{where}: a field outside any block")
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        if len(tokens) < 3:
            raise SchemaError(f"{where}: a field is '<name> <type> <versions> [attributes]'")
        name = tokens[0]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise SchemaError(f"{where}: field names are snake_case: '{name}'")
        if name in CPP_KEYWORDS or name in RESERVED_NAMES:
            raise SchemaError(f"{where}: '{name}' clashes with a C++ keyword or generated member")
        fld = Field(name, Type.parse(tokens[1], where), Versions.parse(tokens[2], where), where)
        attrs = parse_attrs(tokens[3:], where)
        for k, v in attrs.items():
            if k == "nullable":
                fld.nullable = Versions.parse(v, where)
            elif k == "default":
                fld.default = v
            elif k == "tag":
                fld.tag = int(v)
            else:
                raise SchemaError(f"{where}: unknown attribute '{k}'")
        stack[-1][1].append(fld)
        stack.append((indent, fld.inline_fields))
    if not s.kind:
        raise SchemaError(f"{path}: no 'api' or 'record' line")
    if s.kind == "api" and set(s.blocks) != {"request", "response"}:
        raise SchemaError(f"{path}: an api needs a request and a response block")
    return s


# ---------------------------------------------------------------------------------
# Resolution and checks
# ---------------------------------------------------------------------------------


def resolve(s):
    """Builds the messages of a schema: resolves struct types, computes the versions
    in which each struct is encoded, and checks the facts that would otherwise
    become wrong code."""
    if s.kind == "api":
        roles = [("request", f"{s.name}_request"), ("response", f"{s.name}_response")]
    else:
        roles = [("record", s.name)]
    for role, cpp_name in roles:
        m = Message(cpp_name, role, s.blocks[role], s)
        m.root.hull = s.versions
        structs = {}  # name -> Struct, for this message

        def walk(st, hull):
            names = set()
            for f in st.fields:
                if f.name in names:
                    raise SchemaError(f"{f.where}: field '{f.name}' declared twice")
                names.add(f.name)
                fv = f.versions & hull
                if fv.empty():
                    raise SchemaError(f"{f.where}: '{f.name}' exists in no version of {cpp_name} ({hull})")
                check_field(s, f, fv)
                t = f.type.struct_type()
                if t is None:
                    if f.inline_fields:
                        raise SchemaError(f"{f.where}: only struct fields have nested fields")
                    continue
                # Nested types live in the message struct's scope, beside its fields.
                if t.name == cpp_name or t.name in root_names:
                    raise SchemaError(f"{f.where}: struct name '{t.name}' clashes with a message or top-level field")
                if f.inline_fields:
                    if t.name in structs or t.name in s.common:
                        raise SchemaError(f"{f.where}: struct '{t.name}' defined twice")
                    sub = Struct(t.name, f.inline_fields, f.where)
                    structs[t.name] = sub
                elif t.name in structs:
                    sub = structs[t.name]
                elif t.name in s.common:
                    sub = Struct(t.name, s.common[t.name], f.where)
                    structs[t.name] = sub
                else:
                    raise SchemaError(f"{f.where}: struct '{t.name}' has no fields and no 'struct' block")
                t.struct = sub
                sub.hull = sub.hull.hull(fv)
                walk(sub, fv)

        root_names = {f.name for f in m.root.fields}
        for f in m.root.fields:
            if f.name in MESSAGE_CONSTANTS:
                raise SchemaError(f"{f.where}: '{f.name}' clashes with a message constant")
        walk(m.root, s.versions)
        # Order nested structs so each is defined before any struct that holds it.
        order = []

        def visit(st):
            for f in st.fields:
                t = f.type.struct_type()
                if t and t.struct not in order:
                    visit(t.struct)
                    order.append(t.struct)

        visit(m.root)
        m.structs = order
        for st in [m.root] + order:
            check_min_size(s, m, st)
        s.messages.append(m)


def check_field(s, f, fv):
    where = f.where
    if f.tag is not None:
        if not s.flexible.covers(fv):
            raise SchemaError(f"{where}: tagged field '{f.name}' exists in non-flexible versions")
    if not (f.nullable & fv).empty() and f.type.kind not in ("string", "bytes", "records", "array"):
        raise SchemaError(f"{where}: a {f.type.kind} field cannot be nullable")
    if f.default is not None:
        d = f.default
        k = f.type.kind
        if d == "null":
            if (f.nullable & fv).empty():
                raise SchemaError(f"{where}: default=null on a field that is never nullable")
        elif k == "fixed" and f.type.name in INTEGER_LIMITS:
            try:
                v = int(d, 0)
            except ValueError:
                raise SchemaError(f"{where}: default '{d}' is not an integer")
            lo, hi = INTEGER_LIMITS[f.type.name]
            if not lo <= v <= hi:
                raise SchemaError(f"{where}: default {d} does not fit {f.type.name}")
        elif k == "fixed" and f.type.name == "bool":
            if d not in ("true", "false"):
                raise SchemaError(f"{where}: a bool default is true or false")
        elif k == "fixed" and f.type.name == "float64":
            float(d)
        elif k == "string":
            if d != '""':
                raise SchemaError(f"{where}: string defaults other than \"\" and null are not supported")
        else:
            raise SchemaError(f"{where}: default on a {k} field is not supported")


def min_size(t, flexible):
    """The fewest bytes a value of type t takes on the wire (for array bounds)."""
    if t.kind == "fixed":
        return FIXED[t.name][1]
    if t.kind == "string":
        return 1 if flexible else 2
    if t.kind in ("bytes", "records", "array"):
        return 1 if flexible else 4
    return None  # struct: computed per version by the caller


def struct_min_size(st, v, flexible):
    n = 1 if flexible else 0
    for f in st.fields:
        if v not in f.versions or f.tag is not None:
            continue
        n += struct_min_size(f.type.struct, v, flexible) if f.type.kind == "struct" else min_size(f.type, flexible)
    return n


def check_min_size(s, m, st):
    # Arrays of structs rely on each element taking at least one byte (that bounds
    # what a decoder allocates from a bogus count); a struct with no field in some
    # version would break that.
    for f in st.fields:
        if f.type.kind == "array" and f.type.elem.kind == "struct":
            sub = f.type.elem.struct
            fv = f.versions & st.hull
            for v in range(fv.lo, fv.hi + 1):
                if struct_min_size(sub, v, v in s.flexible) == 0:
                    raise SchemaError(f"{f.where}: struct '{sub.name}' is empty in v{v}")


# ---------------------------------------------------------------------------------
# C++ generation
# ---------------------------------------------------------------------------------


class Gen:
    """Generates code for one message. Fields are handled by kind; the same walk
    emits encode and size so the two cannot disagree."""

    def __init__(self, m):
        self.m = m
        self.s = m.schema
        self.has_flexible = not (self.s.flexible & self.s.versions).empty()
        self.tmp = 0

    def fresh(self, base):
        self.tmp += 1
        return f"{base}{self.tmp}"

    # -- types -------------------------------------------------------------------

    def qual(self, st):
        if st is self.m.root:
            return self.m.cpp_name
        return f"{self.m.cpp_name}::{st.name}"

    def elem_cpp(self, t):
        if t.kind == "fixed":
            return FIXED[t.name][0]
        if t.kind == "string":
            return "std::string"
        if t.kind == "bytes":
            return "::gregor::bytes"
        if t.kind == "records":
            return "::gregor::protocol::records"
        if t.kind == "struct":
            return self.qual(t.struct)
        return f"std::vector<{self.elem_cpp(t.elem)}>"

    def is_optional(self, f, st):
        """Whether the C++ member is a std::optional (records carry their own null)."""
        return f.type.kind in ("string", "bytes", "array") and not (f.nullable & f.versions & st.hull).empty()

    def field_cpp(self, f, st):
        t = self.elem_cpp(f.type)
        return f"std::optional<{t}>" if self.is_optional(f, st) else t

    def default_init(self, f, st):
        d = f.default
        k = f.type.kind
        if k == "fixed":
            name = f.type.name
            if name == "uuid":
                return ""
            if name == "bool":
                return f" = {d or 'false'}"
            if name == "float64":
                return f" = {repr(float(d or 0))}"
            v = int(d, 0) if d else 0
            lo, hi = INTEGER_LIMITS[name]
            if v == lo and v != 0:
                return f" = std::numeric_limits<{FIXED[name][0]}>::min()"
            return f" = {d if d and d.startswith('0x') else v}"
        if self.is_optional(f, st) and d == '""':
            return " = std::string()"
        return ""

    def non_default(self, f, st, e):
        """C++ condition: the field differs from its default (tagged fields are only
        written then)."""
        k = f.type.kind
        opt = self.is_optional(f, st)
        if k == "fixed":
            if f.type.name == "uuid":
                return f"!{e}.is_zero()"
            return f"{e} != {self.default_init(f, st)[3:] or '0'}"
        if k == "records":
            return f"!{e}.is_null()"
        if k == "struct":
            return f"!({e} == {self.qual(f.type.struct)}{{}})"
        if opt:
            if f.default == '""':
                return f"!({e} && {e}->empty())"
            return f"{e}.has_value()"
        return f"!{e}.empty()"

    # -- per-value code ------------------------------------------------------------

    def encode_value(self, t, e, nullable, opt, out, ind):
        """Appends lines encoding value `e` of type t. `nullable` is a C++ condition,
        `opt` whether e is a std::optional."""
        p = " " * ind
        if t.kind == "fixed":
            out.append(f"{p}w.write_{FIXED[t.name][2]}({e});")
        elif t.kind == "string":
            if opt:
                out.append(f"{p}w.write_nullable_string({e}, flex, {nullable});")
            else:
                out.append(f"{p}w.write_string({e}, flex);")
        elif t.kind == "bytes":
            if opt:
                out.append(f"{p}w.write_nullable_bytes({e}, flex, {nullable});")
            else:
                out.append(f"{p}w.write_bytes({e}, flex);")
        elif t.kind == "records":
            out.append(f"{p}w.write_records({e}, flex, {nullable});")
        elif t.kind == "struct":
            out.append(f"{p}{e}.encode(w, version);")
        else:
            x = self.fresh("x")
            if opt:
                out.append(f"{p}if (!{e}) {{")
                out.append(f"{p}  w.write_null_array(flex, {nullable});")
                out.append(f"{p}}} else {{")
                out.append(f"{p}  w.write_array_length({e}->size(), flex);")
                out.append(f"{p}  for (const auto& {x} : *{e}) {{")
                self.encode_value(t.elem, x, "false", False, out, ind + 4)
                out.append(f"{p}  }}")
                out.append(f"{p}}}")
            else:
                out.append(f"{p}w.write_array_length({e}.size(), flex);")
                out.append(f"{p}for (const auto& {x} : {e}) {{")
                self.encode_value(t.elem, x, "false", False, out, ind + 2)
                out.append(f"{p}}}")

    def size_value(self, t, e, nullable, opt, acc, out, ind):
        """Appends lines adding the encoded size of `e` to `acc`."""
        p = " " * ind
        if t.kind == "fixed":
            out.append(f"{p}{acc} += {FIXED[t.name][1]};")
        elif t.kind == "string":
            if opt:
                out.append(f"{p}{acc} += size_of_nullable_string({e}, flex, {nullable});")
            else:
                out.append(f"{p}{acc} += size_of_string({e}, flex);")
        elif t.kind == "bytes":
            if opt:
                out.append(f"{p}{acc} += size_of_nullable_bytes({e}, flex, {nullable});")
            else:
                out.append(f"{p}{acc} += size_of_bytes({e}.size(), flex);")
        elif t.kind == "records":
            out.append(f"{p}{acc} += size_of_records({e}, flex, {nullable});")
        elif t.kind == "struct":
            out.append(f"{p}{acc} += {e}.size(version);")
        else:
            x = self.fresh("x")
            vec = f"(*{e})" if opt else e
            if opt:
                out.append(f"{p}if (!{e}) {{")
                out.append(f"{p}  {acc} += size_of_null_array(flex, {nullable});")
                out.append(f"{p}}} else {{")
                ind += 2
                p = " " * ind
            out.append(f"{p}{acc} += size_of_array_length({vec}.size(), flex);")
            if t.elem.kind == "fixed":
                out.append(f"{p}{acc} += {vec}.size() * {FIXED[t.elem.name][1]};")
            else:
                out.append(f"{p}for (const auto& {x} : {vec}) {{")
                self.size_value(t.elem, x, "false", False, acc, out, ind + 2)
                out.append(f"{p}}}")
            if opt:
                out.append(f"{' ' * (ind - 2)}}}")

    def decode_value(self, t, e, nullable, opt, rd, out, ind):
        """Appends lines decoding into lvalue `e` from reader `rd`; they `return false`
        on malformed input."""
        p = " " * ind
        if t.kind == "fixed":
            out.append(f"{p}{e} = {rd}.read_{FIXED[t.name][2]}();")
        elif t.kind in ("string", "bytes"):
            if opt:
                out.append(f"{p}{e} = {rd}.read_nullable_{t.kind}(flex);")
                if nullable != "true":
                    out.append(f"{p}if (!{e} && !({nullable})) return false;")
            else:
                out.append(f"{p}{e} = {rd}.read_{t.kind}(flex);")
        elif t.kind == "records":
            out.append(f"{p}{e} = {rd}.read_records(flex, {nullable});")
        elif t.kind == "struct":
            out.append(f"{p}if (!{e}.decode({rd}, version)) return false;")
        else:
            n = self.fresh("n")
            elem_size = FIXED[t.elem.name][1] if t.elem.kind == "fixed" else 1
            size_arg = f", {elem_size}" if elem_size != 1 else ""
            out.append(f"{p}const int32_t {n} = {rd}.read_array_length(flex{size_arg});")
            out.append(f"{p}if (!{rd}.ok()) return false;")
            if opt:
                out.append(f"{p}if ({n} < 0) {{")
                if nullable != "true":
                    out.append(f"{p}  if (!({nullable})) return false;")
                out.append(f"{p}  {e}.reset();")
                out.append(f"{p}}} else {{")
                vec = self.fresh("v")
                out.append(f"{p}  auto& {vec} = {e}.emplace();")
                ind += 2
            else:
                out.append(f"{p}if ({n} < 0) return false;")
                vec = e
            p = " " * ind
            if t.elem.kind == "fixed":
                # Exact: the length check above bounded n by the bytes left.
                out.append(f"{p}{vec}.reserve(static_cast<size_t>({n}));")
            else:
                # Elements may be far larger in memory than on the wire; let the
                # vector grow with what actually decodes.
                out.append(f"{p}{vec}.reserve(std::min<size_t>(static_cast<size_t>({n}), 64));")
            i = self.fresh("i")
            out.append(f"{p}for (int32_t {i} = 0; {i} < {n}; ++{i}) {{")
            el = t.elem
            if el.kind == "struct":
                out.append(f"{p}  if (!{vec}.emplace_back().decode({rd}, version)) return false;")
            else:
                self.decode_value(el, f"{vec}.emplace_back()", "false", False, rd, out, ind + 2)
                out.append(f"{p}  if (!{rd}.ok()) return false;")
            out.append(f"{p}}}")
            if opt:
                out.append(f"{' ' * (ind - 2)}}}")

    # -- per-struct functions --------------------------------------------------------

    def guarded(self, c, body, out, ind):
        """Wraps body lines in `if (c)` unless c is always true."""
        if c == "true":
            out.extend(" " * ind + line for line in body)
        elif c != "false":
            out.append(" " * ind + f"if ({c}) {{")
            out.extend(" " * (ind + 2) + line for line in body)
            out.append(" " * ind + "}")

    def nullable_cond(self, f, fv):
        """Whether the field may be null, given the version is one it exists in."""
        return cond(f.nullable, fv)

    def tagged(self, st):
        return sorted((f for f in st.fields if f.tag is not None), key=lambda f: f.tag)

    def gen_struct(self, st, is_root):
        """Returns (declaration lines, definition lines) for one struct."""
        m, s = self.m, self.s
        hull = st.hull
        flex_c = cond(s.flexible, hull)
        q = self.qual(st)
        decl = []
        defs = []

        # Declaration.
        for f in st.fields:
            decl.append(f"{self.field_cpp(f, st)} {f.name}{self.default_init(f, st)};")
        if self.has_flexible:
            decl.append("::gregor::protocol::raw_tagged_fields unknown_tagged_fields;  // kept for re-encoding")
        decl.append("")
        decl.append("bool decode(wire_reader& r, int16_t version);")
        decl.append("void encode(wire_writer& w, int16_t version) const;")
        decl.append("size_t size(int16_t version) const;")
        decl.append(f"bool operator==(const {st.name}&) const = default;")

        regular = [f for f in st.fields if f.tag is None]
        tags = self.tagged(st)
        # Tagged fields are only read or written inside the flexible-version check.
        tag_hull = hull & s.flexible

        # decode
        out = [f"bool {q}::decode(wire_reader& r, int16_t version) {{"]
        if is_root:
            out.append("  if (version < min_version || version > max_version) return false;")
            out.append(f"  *this = {st.name}{{}};")
        else:
            out.append("  (void)version;")
        out.append(f"  const bool flex = {flex_c};")
        out.append("  (void)flex;")
        for f in regular:
            fv = f.versions & hull
            body = []
            self.decode_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), "r", body, 0)
            self.guarded(cond(f.versions, hull), body, out, 2)
        if self.has_flexible and flex_c != "false":
            body = []
            body.append("const uint32_t tag_count = r.read_uvarint();")
            body.append("for (uint32_t i = 0; i < tag_count && r.ok(); ++i) {")
            body.append("  uint32_t tag;")
            body.append("  bytes_view value;")
            body.append("  if (!read_tagged_field(r, tag, value)) return false;")
            first = True
            for f in tags:
                fv = f.versions & hull
                c = cond(f.versions, tag_hull)
                kw = "if" if first else "} else if"
                first = False
                body.append(f"  {kw} (tag == {f.tag}{'' if c == 'true' else ' && ' + c}) {{")
                body.append("    wire_reader tr(value);")
                self.decode_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), "tr", body, 4)
                body.append("    if (!tr.ok()) return false;")
            if tags:
                body.append("  } else {")
                body.append("    unknown_tagged_fields.push_back({tag, bytes(value.begin(), value.end())});")
                body.append("  }")
            else:
                body.append("  unknown_tagged_fields.push_back({tag, bytes(value.begin(), value.end())});")
            body.append("}")
            self.guarded(flex_c, body, out, 2)
        out.append("  return r.ok();")
        out.append("}")
        defs.append("\n".join(out))

        # encode
        out = [f"void {q}::encode(wire_writer& w, int16_t version) const {{"]
        if is_root:
            out.append(f'  GREGOR_ASSERT(version >= min_version && version <= max_version, "{m.cpp_name} v{{}}", version);')
        else:
            out.append("  (void)version;")
        out.append(f"  const bool flex = {flex_c};")
        out.append("  (void)flex;")
        for f in regular:
            fv = f.versions & hull
            body = []
            self.encode_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), body, 0)
            self.guarded(cond(f.versions, hull), body, out, 2)
        if self.has_flexible and flex_c != "false":
            body = []
            body.append("size_t tag_count = unknown_tagged_fields.size();")
            for f in tags:
                c = cond(f.versions, tag_hull)
                nd = self.non_default(f, st, f"this->{f.name}")
                body.append(f"const bool has_{f.name} = {nd if c == 'true' else f'({c}) && {nd}'};")
                body.append(f"tag_count += has_{f.name};")
            body.append("w.write_uvarint(tag_count);")
            if tags:
                body.append("size_t next_unknown = 0;")
            for f in tags:
                fv = f.versions & hull
                body.append(f"next_unknown = w.write_unknown_tags(unknown_tagged_fields, next_unknown, {f.tag});")
                body.append(f"if (has_{f.name}) {{")
                body.append(f"  w.write_uvarint({f.tag});")
                body.append("  size_t value_size = 0;")
                self.size_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), "value_size", body, 2)
                body.append("  w.write_uvarint(value_size);")
                self.encode_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), body, 2)
                body.append("}")
            start = "next_unknown" if tags else "0"
            body.append(f"w.write_unknown_tags(unknown_tagged_fields, {start}, UINT64_MAX);")
            self.guarded(flex_c, body, out, 2)
        out.append("}")
        defs.append("\n".join(out))

        # size
        out = [f"size_t {q}::size(int16_t version) const {{"]
        if is_root:
            out.append(f'  GREGOR_ASSERT(version >= min_version && version <= max_version, "{m.cpp_name} v{{}}", version);')
        else:
            out.append("  (void)version;")
        out.append(f"  const bool flex = {flex_c};")
        out.append("  (void)flex;")
        out.append("  size_t n = 0;")
        for f in regular:
            fv = f.versions & hull
            body = []
            self.size_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), "n", body, 0)
            self.guarded(cond(f.versions, hull), body, out, 2)
        if self.has_flexible and flex_c != "false":
            body = []
            body.append("size_t tag_count = unknown_tagged_fields.size();")
            body.append("n += size_of_unknown_tags(unknown_tagged_fields);")
            for f in tags:
                fv = f.versions & hull
                c = cond(f.versions, tag_hull)
                nd = self.non_default(f, st, f"this->{f.name}")
                body.append(f"if ({nd if c == 'true' else f'({c}) && {nd}'}) {{")
                body.append("  ++tag_count;")
                body.append("  size_t value_size = 0;")
                self.size_value(f.type, f"this->{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), "value_size", body, 2)
                body.append(f"  n += size_of_uvarint({f.tag}) + size_of_uvarint(value_size) + value_size;")
                body.append("}")
            body.append("n += size_of_uvarint(tag_count);")
            self.guarded(flex_c, body, out, 2)
        out.append("  return n;")
        out.append("}")
        defs.append("\n".join(out))
        return decl, defs

    def gen_sample(self, st):
        """fill_sample for tests: sets every field present in `version` to a generated
        value, leaving the others at their defaults, so decode(encode(x)) == x."""
        hull = st.hull
        q = self.qual(st)
        out = [f"void fill_sample({q}& m, int16_t version, sample_gen& g) {{"]
        out.append("  (void)version;")
        out.append("  (void)g;")
        for f in st.fields:
            fv = f.versions & hull
            body = []
            self.sample_value(f.type, f"m.{f.name}", self.nullable_cond(f, fv), self.is_optional(f, st), body, 0)
            self.guarded(cond(f.versions, hull), body, out, 2)
        if self.has_flexible:
            fc = cond(self.s.flexible, hull)
            known = []
            for f in self.tagged(st):
                c = cond(f.versions, hull)
                known.append(f"{f.tag}" if c == "true" else f"({c}) ? {f.tag} : -1")
            body = [f"g.unknown_tags(m.unknown_tagged_fields, {{{', '.join(known)}}});"]
            self.guarded(fc, body, out, 2)
        out.append("}")
        return "\n".join(out)

    def sample_value(self, t, e, nullable, opt, out, ind):
        p = " " * ind
        if t.kind == "fixed":
            out.append(f"{p}{e} = g.value<{FIXED[t.name][0]}>();")
        elif t.kind in ("string", "bytes"):
            fn = "string" if t.kind == "string" else "blob"
            if opt:
                out.append(f"{p}if (g.null({nullable})) {e}.reset(); else {e} = g.{fn}();")
            else:
                out.append(f"{p}{e} = g.{fn}();")
        elif t.kind == "records":
            out.append(f"{p}if (g.null({nullable})) {e}.set_null(); else {e}.set_bytes(g.blob());")
        elif t.kind == "struct":
            out.append(f"{p}fill_sample({e}, version, g);")
        else:
            if opt:
                out.append(f"{p}if (g.null({nullable})) {{")
                out.append(f"{p}  {e}.reset();")
                out.append(f"{p}}} else {{")
                vec = self.fresh("v")
                out.append(f"{p}  auto& {vec} = {e}.emplace();")
                ind += 2
            else:
                vec = e
            p = " " * ind
            i = self.fresh("i")
            out.append(f"{p}for (size_t {i} = 0, n = g.count(); {i} < n; ++{i}) {{")
            self.sample_value(t.elem, f"{vec}.emplace_back()", "false", False, out, ind + 2)
            out.append(f"{p}}}")
            if opt:
                out.append(f"{' ' * (ind - 2)}}}")


def header_comment(s):
    rel = os.path.relpath(s.path, start=os.path.dirname(os.path.dirname(s.path)))
    return f"// Generated by tools/gen_protocol.py from schemas/{rel}. Do not edit."


def message_consts(m):
    s = m.schema
    first_flex = s.flexible.lo if not (s.flexible & s.versions).empty() else s.versions.hi + 1
    lines = []
    if s.kind == "api":
        lines.append(f"static constexpr int16_t api_key = {s.key};")
    elif s.key is not None:
        lines.append(f"static constexpr int16_t record_type = {s.key};")
    lines.append(f"static constexpr int16_t min_version = {s.versions.lo};")
    lines.append(f"static constexpr int16_t max_version = {s.versions.hi};")
    lines.append(f"static constexpr int16_t first_flexible_version = {first_flex};")
    return lines


def indent_lines(lines, n):
    return [(" " * n + line) if line else "" for line in lines]


def gen_schema_files(s):
    """Returns {relative path: content} for one schema's header and source."""
    base = f"{s.group}/{s.name}"
    h = ["#pragma once", header_comment(s), "#include <cstddef>", "#include <cstdint>", "#include <limits>",
         "#include <optional>", "#include <string>", "#include <vector>", "", '#include "base/bytes.h"',
         '#include "protocol/wire.h"', "", "namespace gregor::protocol {", ""]
    cc = [header_comment(s), f'#include "protocol/{base}.h"', "", "#include <algorithm>", "",
          '#include "base/assert.h"', "",
          "namespace gregor::protocol {", ""]
    for m in s.messages:
        g = Gen(m)
        h.append(f"struct {m.cpp_name} {{")
        h.extend(indent_lines(message_consts(m), 2))
        for st in m.structs:
            decl, defs = g.gen_struct(st, False)
            h.append("")
            h.append(f"  struct {st.name} {{")
            h.extend(indent_lines(decl, 4))
            h.append("  };")
            cc.extend(d + "\n" for d in defs)
        decl, defs = g.gen_struct(m.root, True)
        h.append("")
        h.extend(indent_lines(decl, 2))
        h.append("};")
        h.append("")
        cc.extend(d + "\n" for d in defs)
    h.append("}  // namespace gregor::protocol")
    cc.append("}  // namespace gregor::protocol")
    return {f"{base}.h": "\n".join(h) + "\n", f"{base}.cc": "\n".join(cc) + "\n"}


def gen_samples(schemas):
    h = ["#pragma once", "// Generated by tools/gen_protocol.py. Do not edit.",
         "// fill_sample(msg, version, gen): a populated value for round-trip tests.",
         '#include "protocol/messages.h"', '#include "protocol/sample_gen.h"', "",
         "namespace gregor::protocol {", ""]
    cc = ["// Generated by tools/gen_protocol.py. Do not edit.", '#include "protocol/samples.h"', "",
          "namespace gregor::protocol {", ""]
    for s in schemas:
        for m in s.messages:
            g = Gen(m)
            for st in m.structs + [m.root]:
                h.append(f"void fill_sample({g.qual(st)}& m, int16_t version, sample_gen& g);")
                cc.append(g.gen_sample(st))
                cc.append("")
    h.append("")
    h.append("}  // namespace gregor::protocol")
    cc.append("}  // namespace gregor::protocol")
    return {"samples.h": "\n".join(h) + "\n", "samples.cc": "\n".join(cc) + "\n"}


def gen_index(schemas):
    apis = sorted((s for s in schemas if s.kind == "api"), key=lambda s: s.key)
    keys = [s.key for s in apis]
    if len(set(keys)) != len(keys):
        raise SchemaError("two schemas use the same api key")
    h = ["#pragma once", "// Generated by tools/gen_protocol.py. Do not edit.",
         "// The APIs Gregor has messages for, and the header versions they use.",
         "#include <cstdint>", "#include <span>", "", "namespace gregor::protocol {", "",
         "// X(name, key) for every API: the request type is name##_request and the",
         "// response type name##_response. Ordered by key.",
         "#define GREGOR_PROTOCOL_APIS(X) \\"]
    h.extend(f"  X({s.name}, {s.key}) \\" for s in apis)
    h.append("")
    h.append("")
    h += ["struct api_info {", "  int16_t key;", "  const char* name;  // snake_case, as in the type names",
          "  int16_t min_version;", "  int16_t max_version;",
          "  int16_t first_flexible_version;  // max_version + 1 when no version is flexible", "};", "",
          "// Every API above, ordered by key.", "std::span<const api_info> all_apis();",
          "// The API with this key, or nullptr.", "const api_info* find_api(int16_t key);", "",
          "// Request header version: 2 for flexible versions, else 1. The flexible range is",
          "// open-ended, so a version above max_version still gets the right header (a",
          "// client probing with a newer ApiVersions). Unknown keys get 1.",
          "int16_t request_header_version(int16_t api_key, int16_t api_version);",
          "// Response header version: 1 for flexible versions, else 0, except that the",
          "// ApiVersions response header is always 0: a client must be able to read it",
          "// before it knows which versions the broker speaks.",
          "int16_t response_header_version(int16_t api_key, int16_t api_version);", "",
          "}  // namespace gregor::protocol"]
    cc = ["// Generated by tools/gen_protocol.py. Do not edit.", '#include "protocol/apis.h"', "",
          "#include <algorithm>", "", "namespace gregor::protocol {", "", "namespace {",
          "// first_flexible_version for APIs that have no flexible version at all.",
          "constexpr int16_t kNeverFlexible = 0x7fff;", "", "struct api_entry {", "  api_info info;",
          "  int16_t flexible_from;  // kNeverFlexible when no version is flexible", "};", "",
          "constexpr api_entry kApis[] = {"]
    for s in apis:
        has_flex = not (s.flexible & s.versions).empty()
        ff = s.flexible.lo if has_flex else s.versions.hi + 1
        cc.append(f'    {{{{{s.key}, "{s.name}", {s.versions.lo}, {s.versions.hi}, {ff}}}, '
                  f'{s.flexible.lo if has_flex else "kNeverFlexible"}}},')
    cc += ["};", "", "constexpr api_info kInfos[] = {"]
    cc.extend(f"    kApis[{i}].info," for i in range(len(apis)))
    cc += ["};", "", "const api_entry* find_entry(int16_t key) {",
           "  auto it = std::lower_bound(std::begin(kApis), std::end(kApis), key,",
           "                             [](const api_entry& e, int16_t k) { return e.info.key < k; });",
           "  return it != std::end(kApis) && it->info.key == key ? it : nullptr;", "}", "}  // namespace", "",
           "std::span<const api_info> all_apis() { return kInfos; }", "",
           "const api_info* find_api(int16_t key) {", "  auto* e = find_entry(key);",
           "  return e ? &e->info : nullptr;", "}", "",
           "int16_t request_header_version(int16_t api_key, int16_t api_version) {",
           "  auto* e = find_entry(api_key);", "  return e && api_version >= e->flexible_from ? 2 : 1;", "}", "",
           "int16_t response_header_version(int16_t api_key, int16_t api_version) {",
           "  if (api_key == 18) return 0;  // ApiVersions",
           "  auto* e = find_entry(api_key);", "  return e && api_version >= e->flexible_from ? 1 : 0;", "}", "",
           "}  // namespace gregor::protocol"]

    msgs = ["#pragma once", "// Generated by tools/gen_protocol.py. Do not edit.",
            "// Every generated message, plus the hand-written headers and error codes.",
            '#include "protocol/apis.h"', '#include "protocol/errors.h"', '#include "protocol/header.h"']
    for s in sorted(schemas, key=lambda s: (s.group, s.name)):
        msgs.append(f'#include "protocol/{s.group}/{s.name}.h"')
    msgs += ["", "// X(type) for every generated top-level message struct (requests, responses,",
             "// records), for code and tests that treat them all alike.", "#define GREGOR_PROTOCOL_MESSAGES(X) \\"]
    for s in sorted(schemas, key=lambda s: (s.group, s.name)):
        for m in s.messages:
            msgs.append(f"  X({m.cpp_name}) \\")
    msgs.append("")
    return {"apis.h": "\n".join(h) + "\n", "apis.cc": "\n".join(cc) + "\n", "messages.h": "\n".join(msgs) + "\n"}


def write_if_changed(path, content):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(tmp, path)


GROUPS = ("api", "metadata", "group", "txn")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schemas", required=True, help="the schemas/ directory")
    ap.add_argument("--out", required=True, help="output directory (…/generated/protocol)")
    args = ap.parse_args()
    schemas = []
    try:
        for group in GROUPS:
            d = os.path.join(args.schemas, group)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if not name.endswith(".schema"):
                    continue
                s = parse_schema(os.path.join(d, name), group)
                if s.name != name[: -len(".schema")]:
                    raise SchemaError(f"{s.path}: the file must be named {s.name}.schema")
                if (s.kind == "api") != (group == "api"):
                    raise SchemaError(f"{s.path}: api files go in api/, records elsewhere")
                resolve(s)
                schemas.append(s)
        files = {}
        for s in schemas:
            files.update(gen_schema_files(s))
        files.update(gen_index(schemas))
        files.update(gen_samples(schemas))
    except SchemaError as e:
        print(f"gen_protocol: {e}", file=sys.stderr)
        return 1
    for rel, content in files.items():
        write_if_changed(os.path.join(args.out, rel), content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
