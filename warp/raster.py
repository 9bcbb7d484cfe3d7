"""The depth map as a triangle mesh, rasterised into the target camera with a z-test, all frames at once.

Every 2×2 block of neighbouring source pixels (a quad, corners a b / c d) is split into two
triangles along the diagonal whose ends have the closer inverse depths. Each source pixel is a
vertex, placed at its target position (u, v) by the reprojection. A target pixel centre inside a
triangle takes the triangle's colour, interpolated perspective-correctly from its three vertices;
where several triangles cover a pixel the nearest wins (largest inverse depth of the triangle's
centroid). A surface the move magnifies therefore stays whole — its triangles simply grow.

The mesh tears at occlusion edges: a triangle whose vertices' source depths differ by more than the
ratio TEAR_DEPTH_RATIO is dropped when the move opens it (its target bounding box is wider or
taller than TEAR_MIN_EXTENT px), so what opens between a near and a far surface stays a hole and no
colour is smeared across it. Triangles the move turns over (seen from behind) are dropped too.
Every vertex is also drawn as a point on its nearest target pixel, so pixels on the border of the
mesh (the image border, a torn edge, an isolated pixel) are kept.

Coverage is watertight: a pixel centre is inside when all three edge functions are ≥ 0, and the two
triangles sharing an edge evaluate it from the same numbers with opposite signs (exactly, in float
arithmetic), so a centre on a shared edge belongs to both — never to neither. Target positions are
snapped to 1/SUBPIXEL px, so a vertex that lands on a pixel centre (every vertex of the identity
move) gives that pixel exactly the vertex's colour.

Candidates (a quad and a target pixel centre inside its bounding box) are listed for all frames at
once (one host synchronisation for their count) and processed in slices of CANDIDATE_CHUNK to bound
memory; the z-test is one ``scatter_reduce_(amax)`` per slice on a 64-bit key: the float bits of
the inverse depth above the triangle's number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Target positions are snapped to 1/SUBPIXEL px: a vertex on a pixel centre up to float round-off
# lands exactly on it.
SUBPIXEL = 256.0
# Vertices farther than this from the image origin (px) are dropped: positions stay exact in float32.
MAX_COORD = 65536.0
# Occlusion edges: a triangle tears when the largest source depth of its vertices exceeds the
# smallest by this ratio and the move opens it (target bounding box wider or taller than
# TEAR_MIN_EXTENT px; an unmoved triangle spans 1 px). See docs/geometry.md for the measurement.
TEAR_DEPTH_RATIO = 1.1
TEAR_MIN_EXTENT = 1.5
# Candidates (quad, target pixel) processed per slice: bounds the working memory (~150 bytes each).
CANDIDATE_CHUNK = 1 << 23
NO_OWNER = -1
# Footprints of border vertices sit this much (relative inverse depth) behind their vertex, so the
# surface's own triangles win wherever they exist and the footprint only extends it.
FOOTPRINT_DEPTH_BIAS = 1e-3
# A footprint is not drawn when one source pixel step spans more than this many target pixels: a
# surface grazing the target camera's plane (its Jacobian explodes), not a surface to extend.
FOOTPRINT_MAX_STEP = 16.0


def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def _min3(a, b, c):
    return torch.minimum(torch.minimum(a, b), c)


def _max3(a, b, c):
    return torch.maximum(torch.maximum(a, b), c)


class Mesh:
    """Per-vertex arrays of all frames, flattened over the grid padded by one column and one row
    (pad = invalid) plus a tail of W + 2 invalid entries, so that the quad q has the corners
    a = q, b = q + 1, c = q + Wp, d = q + Wp + 1 (Wp = W + 1) and each corner array is a slice."""

    def __init__(self, u, v, inv_z, source_depth, valid):
        f, h, w = u.shape
        self.frames, self.height, self.width = f, h, w
        self.wp = w + 1
        self.per_frame = (h + 1) * self.wp
        self.count = f * self.per_frame  # quads: one per vertex of the padded grid
        if 3 * self.count >= 2**32:
            raise ValueError(f"{f} frames of {w}x{h} are too many for one warp; warp fewer frames at a time.")
        inside = valid & (u.abs() < MAX_COORD) & (v.abs() < MAX_COORD)
        tail = self.wp + 2

        def flat(t, fill):
            return F.pad(F.pad(t, (0, 1, 0, 1), value=fill).reshape(-1), (0, tail), value=fill)

        self.x = flat(torch.where(inside, u, 0.0).mul_(SUBPIXEL).round_().div_(SUBPIXEL), 0.0)
        self.y = flat(torch.where(inside, v, 0.0).mul_(SUBPIXEL).round_().div_(SUBPIXEL), 0.0)
        self.inv_z = flat(torch.where(inside, inv_z, 0.0), 0.0)
        self.depth = flat(torch.where(inside, source_depth, 1.0), 1.0)
        self.valid = flat(inside, False)

    def corners(self, t):
        """The corner views a, b, c, d [count] of a per-vertex array t."""
        n, wp = self.count, self.wp
        return t[:n], t[1:n + 1], t[wp:n + wp], t[wp + 1:n + wp + 1]

    def main_diagonal(self):
        """Quads [count] bool split along a–d (else b–c): the diagonal whose ends have closer inverse depths."""
        a, b, c, d = self.corners(self.inv_z)
        return (a - d).abs() <= (b - c).abs()

    def cycle(self, t, main):
        """The corners p0..p3 of every quad in the cyclic order (a, b, d, c) when split along a–d,
        else (b, d, c, a): the triangles are (p0, p1, p2) and (p0, p2, p3), both with positive area
        when the surface faces the camera, and p0–p2 is the diagonal. ``t`` a per-vertex array or
        vertex indices of corner a (then the indices of p0..p3)."""
        if isinstance(t, torch.Tensor) and t.dtype == torch.int64:
            a, b, c, d = t, t + 1, t + self.wp, t + self.wp + 1
        else:
            a, b, c, d = self.corners(t)
        return (torch.where(main, a, b), torch.where(main, b, d), torch.where(main, d, c), torch.where(main, c, a))


# Columns of the per-quad table gathered by every candidate: corner positions relative to the
# quad's bounding-box origin, then the inverse depth of each triangle's centroid (-1 = not drawn).
X0, Y0, INV = 0, 4, 8


def _rows(xs, ys, inv0, inv1, mesh: Mesh, box=None):
    """Rows of a drawing table [n, 10] (see X0, Y0, INV) and the pixel-centre bounding box clipped to
    the image — origin (x_lo, y_lo) and size (nx, ny), int64 [n]; nx·ny = 0 when nothing is drawn —
    from the four corners xs, ys (lists of [n]) of quads whose triangles (p0, p1, p2), (p0, p2, p3)
    have inverse depths inv0, inv1 (≤ 0 = not drawn). ``box`` (lo_x, lo_y, hi_x, hi_y) defaults to the
    corners' bounding box."""
    drawn = (inv0 > 0) | (inv1 > 0)
    if box is None:
        box = (torch.minimum(_min3(*xs[:3]), xs[3]), torch.minimum(_min3(*ys[:3]), ys[3]),
               torch.maximum(_max3(*xs[:3]), xs[3]), torch.maximum(_max3(*ys[:3]), ys[3]))
    lo_x, lo_y, hi_x, hi_y = box
    lo_x = torch.where(drawn, lo_x, 0.0).ceil_().clamp_(min=0)
    lo_y = torch.where(drawn, lo_y, 0.0).ceil_().clamp_(min=0)
    nx = (torch.where(drawn, hi_x, -1.0).floor_().clamp_(max=mesh.width - 1) - lo_x + 1).clamp_(min=0)
    ny = (torch.where(drawn, hi_y, -1.0).floor_().clamp_(max=mesh.height - 1) - lo_y + 1).clamp_(min=0)
    table = torch.stack([t - lo_x for t in xs] + [t - lo_y for t in ys] + [inv0, inv1], -1)
    return table, (lo_x.long(), lo_y.long(), nx.long(), ny.long())


def quad_table(mesh: Mesh, main: torch.Tensor):
    """The mesh's drawing table and boxes (see ``_rows``), one row per quad [count]: a triangle is
    drawn when its three vertices are valid, it faces the camera and it is not torn; its inverse
    depth for the z-test is that of its centroid."""
    p = {name: mesh.cycle(getattr(mesh, name), main) for name in ("x", "y", "inv_z", "depth", "valid")}
    boxes, inv = [], []
    for k in ((0, 1, 2), (0, 2, 3)):
        x0, x1, x2 = (p["x"][i] for i in k)
        y0, y1, y2 = (p["y"][i] for i in k)
        z = [p["depth"][i] for i in k]
        lo_x, hi_x, lo_y, hi_y = _min3(x0, x1, x2), _max3(x0, x1, x2), _min3(y0, y1, y2), _max3(y0, y1, y2)
        opened = torch.maximum(hi_x - lo_x, hi_y - lo_y) > TEAR_MIN_EXTENT
        torn = opened & (_max3(*z) > TEAR_DEPTH_RATIO * _min3(*z))
        drawn = p["valid"][k[0]] & p["valid"][k[1]] & p["valid"][k[2]] & ~torn
        drawn &= _cross(x1 - x0, y1 - y0, x2 - x0, y2 - y0) > 0
        big = torch.finfo(lo_x.dtype).max
        boxes.append((torch.where(drawn, lo_x, big), torch.where(drawn, lo_y, big),
                      torch.where(drawn, hi_x, -big), torch.where(drawn, hi_y, -big)))
        inv.append(torch.where(drawn, (p["inv_z"][k[0]] + p["inv_z"][k[1]] + p["inv_z"][k[2]]) / 3, -1.0))
    (lx0, ly0, hx0, hy0), (lx1, ly1, hx1, hy1) = boxes
    box = (torch.minimum(lx0, lx1), torch.minimum(ly0, ly1), torch.maximum(hx0, hx1), torch.maximum(hy0, hy1))
    return _rows(p["x"], p["y"], inv[0], inv[1], mesh, box)


def _same_surface(mesh: Mesh, vertex, neighbour):
    """Whether ``neighbour`` (indices, may be < 0) is a valid vertex on the same surface as ``vertex``
    (source depths within TEAR_DEPTH_RATIO)."""
    nb = neighbour.clamp(min=0)
    za, zb = mesh.depth[vertex], mesh.depth[nb]
    return (neighbour >= 0) & mesh.valid[nb] & (torch.maximum(za, zb) <= TEAR_DEPTH_RATIO * torch.minimum(za, zb))


def _axis(mesh: Mesh, vertex, step: int, default: tuple[float, float]):
    """Target image (x, y) of one source pixel step (step = 1: a column, W + 1: a row) at ``vertex``:
    the central difference over its same-surface neighbours, one-sided at a tear, ``default`` when
    it has none."""
    after, before = vertex + step, vertex - step
    s_after, s_before = _same_surface(mesh, vertex, after), _same_surface(mesh, vertex, before)
    out = []
    for t, d in ((mesh.x, default[0]), (mesh.y, default[1])):
        here, a, b = t[vertex], t[after], t[before.clamp(min=0)]
        out.append(torch.where(s_after & s_before, (a - b) / 2,
                               torch.where(s_after, a - here, torch.where(s_before, here - b, d))))
    return out


def footprint_table(mesh: Mesh, table: torch.Tensor):
    """Drawing table and boxes (see ``_rows``) of the footprints of the mesh's border vertices (a
    vertex with a quad around it that is not fully drawn: at the image border, at a tear, an isolated
    pixel), and those vertices [n]. A footprint is the vertex's pixel square (±½ pixel step), mapped
    by the local Jacobian of its own surface, at the vertex's inverse depth less FOOTPRINT_DEPTH_BIAS
    so that where the surface's triangles exist they win. Footprints magnified beyond
    FOOTPRINT_MAX_STEP are not drawn."""
    n, wp = mesh.count, mesh.wp
    open_quad = F.pad((table[:, INV] <= 0) | (table[:, INV + 1] <= 0), (wp + 1, 0), value=True)
    border = (open_quad[wp + 1:wp + 1 + n] | open_quad[wp:wp + n] | open_quad[1:1 + n] | open_quad[:n]) & mesh.valid[:n]
    vertex = border.nonzero().squeeze(1)
    ux, uy = _axis(mesh, vertex, 1, (1.0, 0.0))
    vx, vy = _axis(mesh, vertex, wp, (0.0, 1.0))
    cx, cy = mesh.x[vertex], mesh.y[vertex]
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # a, b, d, c: the cyclic order of a quad
    xs = [cx + 0.5 * (su * ux + sv * vx) for su, sv in signs]
    ys = [cy + 0.5 * (su * uy + sv * vy) for su, sv in signs]
    step = torch.maximum(torch.maximum(ux.abs(), uy.abs()), torch.maximum(vx.abs(), vy.abs()))
    inv = torch.where(step <= FOOTPRINT_MAX_STEP, mesh.inv_z[vertex] * (1.0 - FOOTPRINT_DEPTH_BIAS), -1.0)
    table, box = _rows(xs, ys, inv, inv, mesh)
    return table, box, vertex


def _keys(inv_z: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """z-test keys int64: the float32 bits of the inverse depth (> 0, so ordered like it) above the owner."""
    return (inv_z.view(torch.int32).long() << 32) | owner


def _draw(table, box, frame, owner_of, mesh: Mesh, keys: torch.Tensor) -> None:
    """z-test every target pixel centre inside a drawn triangle of ``table`` (see ``_rows``) into
    ``keys`` [F·H·W]; frame [n] is each row's frame, owner_of(rows, in_first) the owners to record."""
    h, w = mesh.height, mesh.width
    device = keys.device
    x_lo, y_lo, nx, ny = box
    counts = nx * ny
    if counts.numel() == 0:
        return
    ends = counts.cumsum(0)
    starts = ends - counts
    base = (frame * h + y_lo) * w + x_lo  # target of (x_lo, y_lo)
    total = int(ends[-1])
    cuts = torch.searchsorted(ends, torch.arange(CANDIDATE_CHUNK, max(total, CANDIDATE_CHUNK), CANDIDATE_CHUNK,
                                                 device=device)).tolist()
    for first, last in zip([0] + cuts, cuts + [counts.shape[0]]):
        item = torch.repeat_interleave(torch.arange(first, last, device=device), counts[first:last])
        local = torch.arange(item.shape[0], device=device).sub_(starts[item]).add_(starts[first])
        width_q = nx[item]
        dy = local.div(width_q, rounding_mode="floor")
        dx = local.sub_(dy * width_q)
        row = table[item]
        fx, fy = dx.float().unsqueeze(1), dy.float().unsqueeze(1)
        rx, ry = (row[:, X0:X0 + 4] - fx).t(), (row[:, Y0:Y0 + 4] - fy).t()
        s01, s12 = _cross(rx[0], ry[0], rx[1], ry[1]) >= 0, _cross(rx[1], ry[1], rx[2], ry[2]) >= 0
        s23, s30 = _cross(rx[2], ry[2], rx[3], ry[3]) >= 0, _cross(rx[3], ry[3], rx[0], ry[0]) >= 0
        diagonal = _cross(rx[2], ry[2], rx[0], ry[0])  # edge p2→p0 of the first triangle
        inv0, inv1 = row[:, INV], row[:, INV + 1]
        in_first = s01 & s12 & (diagonal >= 0) & (inv0 > 0)
        in_second = s23 & s30 & (diagonal <= 0) & (inv1 > 0)
        key = torch.where(in_first | in_second, _keys(torch.where(in_first, inv0, inv1), owner_of(item, in_first)),
                          NO_OWNER)
        keys.scatter_reduce_(0, base[item] + dy * w + dx, key, "amax")


def rasterize(u: torch.Tensor, v: torch.Tensor, inv_z: torch.Tensor, source_depth: torch.Tensor,
              valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which source pixels make each target pixel, and with which weights.

    u, v [F, H, W] float32: target column and row of every source pixel (any value where not
    valid); inv_z [F, H, W] float32: 1/z in the target camera (> 0 where valid); source_depth
    [F, H, W]: the depth the pixel was lifted with (> 0 where valid); valid [F, H, W] bool.
    Returns sources [F, H, W, 3] int64 (rows of ``padded_pixels``), weights [F, H, W, 3] float32
    (perspective-correct, sum 1; 0 in holes) and seen [F, H, W] bool.
    """
    f, h, w = u.shape
    mesh = Mesh(u.float(), v.float(), inv_z.float(), source_depth.float(), valid)
    main = mesh.main_diagonal()
    table, box = quad_table(mesh, main)
    vertex_owner = 2 * mesh.count  # owners at or above this are vertices (their footprints)
    keys = torch.full((f * h * w,), NO_OWNER, dtype=torch.int64, device=u.device)
    frame = torch.arange(mesh.count, device=u.device) // mesh.per_frame
    _draw(table, box, frame, lambda quad, in_first: 2 * quad + ~in_first, mesh, keys)
    fp_table, fp_box, vertex = footprint_table(mesh, table)
    _draw(fp_table, fp_box, frame[vertex], lambda row, in_first: vertex[row] + vertex_owner, mesh, keys)
    return _interpolation(mesh, main, keys.view(f, h, w), vertex_owner)


def _interpolation(mesh: Mesh, main: torch.Tensor, keys: torch.Tensor, vertex_owner: int):
    """Sources, weights and seen (see ``rasterize``) from the winning keys [F, H, W]."""
    f, h, w = keys.shape
    device = keys.device
    seen = keys >= 0
    owner = keys & 0xFFFFFFFF
    is_vertex = owner >= vertex_owner
    quad = torch.where(is_vertex, 0, owner >> 1)
    second = (owner & 1).bool()
    p = mesh.cycle(quad, main[quad])
    corners = (p[0], torch.where(second, p[2], p[1]), torch.where(second, p[3], p[2]))
    py = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    px = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    r = [(mesh.x[k] - px, mesh.y[k] - py) for k in corners]
    edge = (_cross(*r[1], *r[2]), _cross(*r[2], *r[0]), _cross(*r[0], *r[1]))  # opposite each corner
    weights = torch.stack([e * mesh.inv_z[k] for e, k in zip(edge, corners)], -1)
    weights = weights / weights.sum(-1, keepdim=True)
    point = torch.tensor([1.0, 0.0, 0.0], device=device)
    weights = torch.where(seen.unsqueeze(-1), torch.where(is_vertex.unsqueeze(-1), point, weights), 0.0)
    sources = torch.where(is_vertex.unsqueeze(-1), (owner - vertex_owner).unsqueeze(-1), torch.stack(corners, -1))
    return torch.where(seen.unsqueeze(-1), sources, 0), weights, seen


def padded_pixels(values: torch.Tensor) -> torch.Tensor:
    """values [F, H, W, C] as the flat per-vertex array [F·(H+1)·(W+1), C] that ``rasterize``'s
    source indices point into (one zero column and row of padding per frame)."""
    c = values.shape[-1]
    return F.pad(values, (0, 0, 0, 1, 0, 1)).reshape(-1, c)
