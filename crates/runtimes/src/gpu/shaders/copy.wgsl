// Strided region copy (Transpose, Expand, Slice, Tile, Concat, Split, reshapes):
// p = [n, rank, out_base, in_base(i32), dims[8], mods[8], in_strides(i32)[8], out_strides[8]].
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    var io = bitcast<i32>(p[3]);
    var oo = p[2];
    var r = i;
    for (var d = i32(p[1]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let c = r % p[4u + k];
        r = r / p[4u + k];
        io = io + i32(c % p[12u + k]) * bitcast<i32>(p[20u + k]);
        oo = oo + c * p[28u + k];
    }
    y[oo] = x[u32(io)];
}
