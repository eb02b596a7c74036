"""The consistency scorer behind Con.Score and Coh-Con.Score (paper §4.3), in one place:
its labelled triples (`triples`), its network (`classifier`), its LightningModule (`module`),
its training and loading (`training`) and the metric over its labels (`metric`)."""
