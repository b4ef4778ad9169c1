"""rgstore: an event-sourced store for reference genomes, refpkgs and FASTA caches."""
