/**
 * A tiny NIfTI-1 writer for tests, so the bridge is proven on a file no Python library made.
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export interface TinyNifti {
  shape: [number, number, number];
  /** Row-major 3x4 sform (the last row 0 0 0 1 is implied). */
  sform: number[][];
  /** int16 voxel values, x fastest. */
  data: Int16Array;
}

export function writeTinyNifti(path: string, image: TinyNifti): void {
  const header = Buffer.alloc(352); // 348-byte header + 4-byte extension flag (all zero: none)
  header.writeInt32LE(348, 0); // sizeof_hdr
  header.writeInt16LE(3, 40); // dim[0]
  image.shape.forEach((n, i) => header.writeInt16LE(n, 42 + 2 * i));
  for (let i = 3; i < 7; i++) header.writeInt16LE(1, 42 + 2 * i);
  header.writeInt16LE(4, 70); // datatype: int16
  header.writeInt16LE(16, 72); // bitpix
  const zooms = [0, 1, 2].map((c) => Math.hypot(...[0, 1, 2].map((r) => image.sform[r]![c]!)));
  header.writeFloatLE(1, 76); // pixdim[0] = qfac
  zooms.forEach((z, i) => header.writeFloatLE(z, 80 + 4 * i));
  header.writeFloatLE(352, 108); // vox_offset
  header.writeFloatLE(1, 112); // scl_slope
  header.writeInt8(2 | 8, 123); // xyzt_units: mm, s
  header.writeInt16LE(0, 252); // qform_code
  header.writeInt16LE(2, 254); // sform_code: aligned
  image.sform.forEach((row, r) => row.forEach((v, c) => header.writeFloatLE(v, 280 + 16 * r + 4 * c)));
  header.write('n+1\0', 344, 'latin1');
  const body = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  const file = Buffer.concat([header, body]);
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(file) : file);
}
