from django.urls import path

from accounts.api import views

urlpatterns = [
    path("org/", views.OrganizationApi.as_view(), name="api-org"),
    path("members/", views.MemberListApi.as_view(), name="api-member-list"),
    path("members/<int:pk>/", views.MemberDetailApi.as_view(), name="api-member-detail"),
    path("teams/", views.TeamListApi.as_view(), name="api-team-list"),
    path("teams/<int:pk>/", views.TeamDetailApi.as_view(), name="api-team-detail"),
    path("invitations/", views.InvitationListApi.as_view(), name="api-invitation-list"),
    path("invitations/accept/", views.InvitationAcceptApi.as_view(), name="api-invitation-accept"),
    path("invitations/<int:pk>/", views.InvitationDetailApi.as_view(), name="api-invitation-detail"),
    path("invitations/<int:pk>/resend/", views.InvitationResendApi.as_view(), name="api-invitation-resend"),
    path("tokens/", views.ApiTokenListApi.as_view(), name="api-token-list"),
    path("tokens/<int:pk>/", views.ApiTokenDetailApi.as_view(), name="api-token-detail"),
    path("audit/", views.AuditLogListApi.as_view(), name="api-audit-list"),
]
