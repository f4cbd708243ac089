"""The Modality Worklist: scheduled exams (items), what modalities query, and what MPPS reports."""
