-- 0008: an import logs one change row per block of up to 4,096 cameras, not one per camera.
--
-- A million-camera import wrote a million camera_changes rows: 7–10 s of index maintenance in a
-- load that psql \copy does in 26 s, and a million rows for every follower to page through. The
-- direct import path (CameraImport.importDirectly) now writes one row per block: kind 'import',
-- camera_id NULL, camera_ids the block's ids in file order, version NULL (each camera keeps its
-- own version in cameras), detail 'rows <first>–<last> (<n> cameras)'. Every other writer still
-- logs one row per camera, as before.
--
-- Readers take the ids of a row as unnest(coalesce(camera_ids, ARRAY[camera_id])), and count
-- camera changes as sum(coalesce(cardinality(camera_ids), 1)). One camera's history is
--   WHERE camera_id = $1 OR $1 = ANY(camera_ids)
-- (its own rows through camera_changes_camera_idx; import blocks are few and read whole).

ALTER TABLE camera_changes ADD COLUMN camera_ids text[];
ALTER TABLE camera_changes ALTER COLUMN camera_id DROP NOT NULL;
ALTER TABLE camera_changes ALTER COLUMN version DROP NOT NULL;
ALTER TABLE camera_changes ADD CONSTRAINT camera_changes_one_or_a_block CHECK (
    CASE WHEN camera_ids IS NULL THEN camera_id IS NOT NULL AND version IS NOT NULL
         ELSE camera_id IS NULL AND version IS NULL AND kind = 'import'
              AND cardinality(camera_ids) BETWEEN 1 AND 4096 AND array_position(camera_ids, NULL) IS NULL
    END);
