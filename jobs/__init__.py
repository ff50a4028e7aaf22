"""The ground floor: what a cell is (typed config, identity) and what a record is (schema,
flags, the one builder, the atomic writer and the one reader). Imports no other project
package, and neither Hydra, Ray nor torch."""
