from django.urls import path

from batches import views

urlpatterns = [
    path("batches/", views.batch_list, name="batches"),
    path("batches/start/", views.batch_start, name="batch_start"),
    path("batches/<str:public_id>/", views.batch_detail, name="batch_detail"),
    path("batches/<str:public_id>/progress.json", views.batch_progress, name="batch_progress"),
    path("batches/<str:public_id>/<str:action>/", views.batch_control, name="batch_control"),
    path("batches/<str:public_id>/files/<str:file_id>/", views.batch_file, name="batch_file"),
]
