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

/** A NIfTI-1 image of any shape and NIfTI data type, for the input catalogue's bad files. */
export interface RawNifti {
  /** Up to 7 dimensions, x fastest. */
  shape: number[];
  /** NIfTI datatype code (4 int16, 16 float32, 32 complex64, 128 RGB24, ...) and bits per voxel. */
  datatype: number;
  bitpix: number;
  data: Buffer;
  /** Row-major 3x4 matrices; a qform is written as quaternion from `qform` when given (rigid only). */
  sform?: number[][] | null;
  sformCode?: number;
  qformCode?: number;
  /** Quaternion b, c, d and offsets (the qform), when qformCode > 0. */
  quatern?: { b: number; c: number; d: number; offset: [number, number, number] };
  pixdim?: number[];
  magic?: string;
}

export function niftiBytes(image: RawNifti): Buffer {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  header.writeInt16LE(image.shape.length, 40);
  for (let i = 0; i < 7; i++) header.writeInt16LE(image.shape[i] ?? 1, 42 + 2 * i);
  header.writeInt16LE(image.datatype, 70);
  header.writeInt16LE(image.bitpix, 72);
  header.writeFloatLE(1, 76);
  const pixdim = image.pixdim ?? [1, 1, 1];
  pixdim.forEach((z, i) => header.writeFloatLE(z, 80 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeInt8(2 | 8, 123);
  header.writeInt16LE(image.qformCode ?? 0, 252);
  header.writeInt16LE(image.sformCode ?? (image.sform ? 2 : 0), 254);
  if (image.quatern) {
    header.writeFloatLE(image.quatern.b, 256);
    header.writeFloatLE(image.quatern.c, 260);
    header.writeFloatLE(image.quatern.d, 264);
    image.quatern.offset.forEach((v, i) => header.writeFloatLE(v, 268 + 4 * i));
  }
  image.sform?.forEach((row, r) => row.forEach((v, c) => header.writeFloatLE(v, 280 + 16 * r + 4 * c)));
  header.write(`${image.magic ?? 'n+1'}\0`, 344, 'latin1');
  return Buffer.concat([header, image.data]);
}

export function writeRawNifti(path: string, image: RawNifti): void {
  const bytes = niftiBytes(image);
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(bytes) : bytes);
}
