"""Acting on a registered version's record: its lineage (``imgclf lineage``) and its
rebuild from that record alone (``imgclf reproduce``)."""
