-- A collection's calibration measured on its own impostor pairs (vultus gallery calibrate):
-- JSON of OwnCalibration (rates, thresholds and counts; nothing per face), as in the SQLite store.
ALTER TABLE collections ADD COLUMN IF NOT EXISTS own_calibration text;
