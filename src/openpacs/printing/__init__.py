"""Print: what modalities print to openpacs (Basic Grayscale/Color Print Management), kept as
films: film composition, the per-association print session, print jobs in the index."""
