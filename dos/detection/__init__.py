"""3D object detection: CenterPoint on any dos backbone, and nuScenes detection metrics."""
