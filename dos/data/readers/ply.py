"""A minimal PLY reader (ascii, binary_little_endian, binary_big_endian) for per-point scalar fields.

`read_ply_vertices` returns the `vertex` element, as {property name: array}. Elements before it are
skipped; in a binary file they must have fixed-size records (no list properties), and the vertex element
itself may hold only scalar properties -- which is what point-cloud PLY files contain.

`read_ply_triangles` returns the `face` element of a triangle mesh (ScanNet's *_vh_clean_2.ply) as
vertex indices [F, 3]; it must follow the vertices and hold one list property (the index list of every
face has length 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.readers.files import read_bytes

SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}


def _parse_header(path: Path, data: bytes) -> tuple[str, list[dict], int]:
    """(format, elements [{name, count, properties: [(name, type)], has_list}], byte offset of the body)."""
    if not data.startswith(b"ply"):
        raise DatasetError(f"{path}: not a PLY file (no 'ply' magic)")
    end = data.find(b"end_header")
    if end < 0:
        raise DatasetError(f"{path}: PLY header has no end_header")
    body = data.find(b"\n", end) + 1
    if body == 0:
        raise DatasetError(f"{path}: PLY header is truncated after end_header")
    fmt = None
    elements: list[dict] = []
    for line in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append({"name": words[1], "count": int(words[2]), "properties": [], "has_list": False})
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1]["has_list"] = True
                elements[-1]["properties"].append((words[-1], "list"))
            elif words[1] in SCALAR_TYPES and len(words) == 3:
                elements[-1]["properties"].append((words[2], SCALAR_TYPES[words[1]]))
            else:
                raise DatasetError(f"{path}: unsupported PLY property line {line.strip()!r}")
        else:
            raise DatasetError(f"{path}: unexpected PLY header line {line.strip()!r}")
    if fmt not in FORMATS:
        raise DatasetError(f"{path}: unsupported PLY format {fmt!r} (ascii, binary_little_endian, binary_big_endian)")
    return fmt, elements, body


def read_ply_vertices(path: Path) -> dict[str, np.ndarray]:
    """The scalar properties of the `vertex` element of a PLY file, by name."""
    data = read_bytes(path, "PLY file")
    return _read_vertices(path, data)[0]


def _read_vertices(path: Path, data: bytes) -> tuple[dict[str, np.ndarray], int]:
    """(the vertex properties, where the vertex element ends: a byte offset, or for ascii a line number)."""
    fmt, elements, offset = _parse_header(path, data)
    names = [element["name"] for element in elements]
    if "vertex" not in names:
        raise DatasetError(f"{path}: PLY file has no vertex element")
    position = names.index("vertex")
    vertex = elements[position]
    if vertex["has_list"]:
        raise DatasetError(f"{path}: the PLY vertex element has a list property; only scalars are supported")
    properties = vertex["properties"]
    count = vertex["count"]

    if fmt == "ascii":
        lines = data[offset:].decode("ascii", errors="replace").splitlines()
        start = sum(element["count"] for element in elements[:position])
        rows = lines[start:start + count]
        if len(rows) < count:
            raise DatasetError(f"{path}: PLY body has {len(rows)} vertex lines, header says {count}")
        try:
            table = np.loadtxt(rows, dtype=np.float64, ndmin=2) if count else np.zeros((0, len(properties)))
        except ValueError as error:
            raise DatasetError(f"{path}: bad number in the PLY vertex data ({error})") from error
        if table.shape[1] != len(properties):
            raise DatasetError(f"{path}: PLY vertex lines have {table.shape[1]} values, header declares "
                               f"{len(properties)} properties")
        return {name: table[:, i].astype(kind) for i, (name, kind) in enumerate(properties)}, start + count

    endian = FORMATS[fmt]
    for element in elements[:position]:
        if element["has_list"]:
            raise DatasetError(f"{path}: binary PLY element {element['name']!r} before the vertices has a list "
                               f"property; not supported")
        offset += element["count"] * np.dtype([(n, endian + k) for n, k in element["properties"]]).itemsize
    dtype = np.dtype([(name, endian + kind) for name, kind in properties])
    available = len(data) - offset
    if available < count * dtype.itemsize:
        raise DatasetError(f"{path}: PLY body holds {max(available, 0)} bytes, {count} vertices need "
                           f"{count * dtype.itemsize}")
    table = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    fields = {name: table[name].astype(table.dtype[name].newbyteorder("="), copy=True) for name, _ in properties}
    return fields, offset + count * dtype.itemsize


def _face_list_types(path: Path, line: str) -> tuple[str, str]:
    """The (count type, index type) of a `property list <count> <index> vertex_indices` header line."""
    words = line.split()
    if len(words) != 5 or words[2] not in SCALAR_TYPES or words[3] not in SCALAR_TYPES:
        raise DatasetError(f"{path}: unsupported PLY face property {line!r}")
    return SCALAR_TYPES[words[2]], SCALAR_TYPES[words[3]]


def read_ply_triangles(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(the vertex properties, the faces as int64 vertex indices [F, 3]) of a triangle-mesh PLY file."""
    data = read_bytes(path, "PLY file")
    vertices, end = _read_vertices(path, data)
    fmt, elements, _ = _parse_header(path, data)
    names = [element["name"] for element in elements]
    position = names.index("vertex") + 1
    if position >= len(elements) or elements[position]["name"] != "face":
        raise DatasetError(f"{path}: PLY file has no face element right after the vertices")
    face = elements[position]
    if len(face["properties"]) != 1 or face["properties"][0][1] != "list":
        raise DatasetError(f"{path}: the PLY face element must hold exactly one list property (the vertex indices)")
    header = data[:data.find(b"end_header")].decode("ascii", errors="replace").splitlines()
    list_line = next(line for line in header if line.split()[:2] == ["property", "list"])
    count_type, index_type = _face_list_types(path, list_line)
    count = face["count"]
    if fmt == "ascii":
        lines = data[_body_offset(data):].decode("ascii", errors="replace").splitlines()[end:end + count]
        if len(lines) < count:
            raise DatasetError(f"{path}: PLY body has {len(lines)} face lines, header says {count}")
        try:
            table = np.loadtxt(lines, dtype=np.int64, ndmin=2) if count else np.zeros((0, 4), np.int64)
        except ValueError as error:
            raise DatasetError(f"{path}: bad number in the PLY face data ({error})") from error
        sizes, indices = table[:, 0], table[:, 1:]
    else:
        endian = FORMATS[fmt]
        dtype = np.dtype([("n", endian + count_type), ("v", endian + index_type, (3,))])
        if len(data) - end < count * dtype.itemsize:
            raise DatasetError(f"{path}: PLY body ends inside the {count} faces (triangles expected)")
        table = np.frombuffer(data, dtype=dtype, count=count, offset=end)
        sizes, indices = table["n"], table["v"]
    if count and (sizes.shape[0] != count or (sizes != 3).any() or indices.shape[1:] != (3,)):
        raise DatasetError(f"{path}: PLY faces are not all triangles (only 3-vertex faces are supported)")
    indices = indices.astype(np.int64)
    num_vertices = len(next(iter(vertices.values()))) if vertices else 0
    if count and (indices.min() < 0 or indices.max() >= num_vertices):
        raise DatasetError(f"{path}: PLY face indices outside 0..{num_vertices - 1}")
    return vertices, indices.reshape(-1, 3)


def _body_offset(data: bytes) -> int:
    return data.find(b"\n", data.find(b"end_header")) + 1
