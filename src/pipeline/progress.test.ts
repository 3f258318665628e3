import { describe, expect, it } from 'vitest';
import type { SessionPlan } from '../bids/discover.js';
import { formatDuration, progressText, RunProgress } from './progress.js';

const plan = (subject: string, session: string | null, images: number): SessionPlan => ({
  subject,
  session,
  reference: '/b/t1.nii.gz',
  referenceReason: 'T1w',
  referenceIsT1w: true,
  images: Array.from({ length: images }, (_, i) => ({ path: `/b/${i}.nii.gz`, relativePath: `${i}.nii.gz`, suffix: 'T1w', entities: {}, registerVia: null })),
});

describe('run progress', () => {
  it('formats durations for people', () => {
    expect([5, 75, 600, 3725].map(formatDuration)).toEqual(['5s', '1m15s', '10m00s', '1h02m']);
  });

  it('counts participants, images and (image, method) outputs, and extrapolates the time left', () => {
    let now = 0;
    const plans = [plan('01', 'pre', 2), plan('01', 'post', 2), plan('02', null, 4)];
    const progress = new RunProgress(plans, 3, { now: () => now });
    expect(progress.counts()).toMatchObject({ participantsTotal: 2, imagesTotal: 8, outputsTotal: 24, etaSeconds: null });
    expect(progressText(progress.counts())).toBe('participants 0/2 | images 0/8 | image x method 0/24 | 0s elapsed, time left unknown yet');
    now = 60_000;
    progress.sessionDone(plans[0]!, 6);
    expect(progress.counts()).toMatchObject({ participantsDone: 0, imagesDone: 2, outputsDone: 6, etaSeconds: 180 });
    now = 120_000;
    progress.sessionDone(plans[1]!, 6);
    expect(progress.counts()).toMatchObject({ participantsDone: 1, imagesDone: 4, outputsDone: 12, etaSeconds: 120 });
    expect(progressText(progress.counts(), 'sub-02: QC')).toBe(
      'participants 1/2 | images 4/8 | image x method 12/24 | 2m00s elapsed, about 2m00s left | sub-02: QC',
    );
  });
});
