import { describe, expect, it } from 'vitest';
import type { AnatImage } from './discover.js';
import { chooseStandIn, describeGeometry, namesT1wContrast, type Geometry } from './reference.js';

function image(name: string, suffix: string): AnatImage {
  return { path: `/bids/sub-01/anat/sub-01_${name}.nii.gz`, relativePath: `sub-01/anat/sub-01_${name}.nii.gz`, suffix, entities: {}, registerVia: null };
}

const axial2d: Geometry = { shape: [512, 512, 30], zooms: [0.45, 0.45, 5.0] }; // 230x230x150 mm
const iso1: Geometry = { shape: [176, 256, 256], zooms: [1, 1, 1] };
const iso08: Geometry = { shape: [224, 320, 320], zooms: [0.8, 0.8, 0.8] };
const tofSlab: Geometry = { shape: [384, 384, 160], zooms: [0.5, 0.5, 0.5] }; // 80 mm slab

function choose(entries: Array<[AnatImage, Geometry | null]>) {
  return chooseStandIn(entries.map(([img]) => img), new Map(entries.map(([img, g]) => [img.path, g])));
}

describe('the stand-in reference of a session with no T1w', () => {
  it('takes the whole-head 3D image over a thin-slice 2D one and a high-resolution slab', () => {
    const flair = image('FLAIR', 'FLAIR');
    const { reference, reason } = choose([[image('T2w', 'T2w'), axial2d], [flair, iso1], [image('angio', 'angio'), tofSlab]]);
    expect(reference).toBe(flair);
    expect(reason).toMatch(/^no T1w in this session; FLAIR stands in as the best 3D anatomical image \(1\.0x1\.0x1\.0 mm voxels, 176x256x256 mm field of view, whole-head 3D\)/);
    expect(reason).toContain('over sub-01_T2w.nii.gz (0.45x0.45x5.0 mm voxels, 230x230x150 mm field of view, whole head, 2D slices) by coverage');
    expect(reason).toMatch(/registered to the atlas by mutual information$/);
  });

  it('calls a coarse isotropic volume 3D: a 3 mm whole head is a 3D acquisition, not a stack of slices', () => {
    const iso3: Geometry = { shape: [86, 86, 86], zooms: [3, 3, 3] };
    expect(describeGeometry(iso3)).toBe('3.0x3.0x3.0 mm voxels, 258x258x258 mm field of view, whole-head 3D');
    const flair = image('FLAIR', 'FLAIR');
    expect(choose([[image('T2w', 'T2w'), axial2d], [flair, iso3]]).reference).toBe(flair);
  });

  it('then the higher resolution, then weighted images before maps, then suffix priority', () => {
    const flair = image('FLAIR', 'FLAIR');
    expect(choose([[image('T2w', 'T2w'), iso1], [flair, iso08]]).reason).toMatch(/by higher resolution/);
    expect(choose([[image('T2w', 'T2w'), iso1], [flair, iso08]]).reference).toBe(flair);
    const unit1 = image('UNIT1', 'UNIT1');
    const byClass = choose([[image('T1map', 'T1map'), iso08], [unit1, iso1]]);
    expect(byClass.reference).toBe(unit1);
    expect(byClass.reason).toMatch(/by weighted images before maps and angiograms/);
    const t2 = image('T2w', 'T2w');
    const tie = choose([[image('FLAIR', 'FLAIR'), iso1], [t2, iso1]]);
    expect(tie.reference).toBe(t2);
    expect(tie.reason).toMatch(/by suffix priority and names \(T2w before FLAIR\)/);
  });

  it('ranks an image whose header could not be read last, and names the only image', () => {
    const pd = image('PDw', 'PDw');
    expect(choose([[image('T2w', 'T2w'), null], [pd, axial2d]]).reference).toBe(pd);
    const only = choose([[pd, null]]);
    expect(only.reference).toBe(pd);
    expect(only.reason).not.toContain(' over ');
    expect(describeGeometry(null)).toBe('header unreadable');
  });
});

describe('whether a file names a T1w (micanon qc registers other contrasts as stand-ins)', () => {
  it('reads the BIDS suffix, and takes any name that is not another anat contrast for a T1w', () => {
    expect(namesT1wContrast('/data/sub-01/anat/sub-01_ses-1_T1w.nii.gz')).toBe(true);
    expect(namesT1wContrast('/data/sub-01/anat/sub-01_T2w.nii.gz')).toBe(false);
    expect(namesT1wContrast('sub-01_acq-tof_angio.nii')).toBe(false);
    expect(namesT1wContrast('brain_defaced.nii.gz')).toBe(true);
    expect(namesT1wContrast('T1.nii.gz')).toBe(true);
  });
});
