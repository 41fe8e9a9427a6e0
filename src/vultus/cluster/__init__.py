"""Face clustering: sort photos by person without enrolling anyone (see docs/clustering.md)."""

from vultus.cluster.api import (
    DEFAULT_FMR,
    Cluster,
    ClusterResult,
    cluster_photos,
    cluster_vectors,
)
from vultus.cluster.faces import PhotoFace, PhotoFaces, photo_faces
from vultus.cluster.metrics import ClusterScores, score_clusters

__all__ = ["DEFAULT_FMR", "Cluster", "ClusterResult", "ClusterScores", "PhotoFace", "PhotoFaces",
           "cluster_photos", "cluster_vectors", "photo_faces", "score_clusters"]
