from __future__ import annotations

from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.account_list, name="list"),
    path("new/", views.account_create, name="create"),
    path("<int:pk>/", views.account_detail, name="detail"),
    path("<int:pk>/balance/", views.balance, name="balance"),
    path("<int:pk>/history/", views.history, name="history"),
    path("<int:pk>/deposit/", views.deposit, name="deposit"),
    path("<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("<int:pk>/transfer/", views.transfer, name="transfer"),
    path("<int:pk>/statement.csv", views.statement, name="statement"),
    path("<int:pk>/rules/", views.rules, name="rules"),
    path(
        "<int:pk>/requests/<int:request_pk>/approve/", views.approve_request, name="approve_request"
    ),
    path("<int:pk>/requests/<int:request_pk>/reject/", views.reject_request, name="reject_request"),
    path("<int:pk>/requests/<int:request_pk>/cancel/", views.cancel_request, name="cancel_request"),
    path("<int:pk>/invite/", views.invite, name="invite"),
    path("<int:pk>/invitations/<int:invitation_pk>/revoke/", views.revoke, name="revoke"),
    path("<int:pk>/notifications/", views.notification_preference, name="notifications"),
    path("<int:pk>/leave/", views.leave, name="leave"),
    path("<int:pk>/close/", views.close, name="close"),
    # The link in the invitation e-mail: the invitation's id and its secret token.
    path("invitations/<int:invitation_pk>/<str:token>/", views.invitation, name="invitation"),
    path("invitations/<int:invitation_pk>/<str:token>/accept/", views.accept, name="accept"),
    path("invitations/<int:invitation_pk>/<str:token>/decline/", views.decline, name="decline"),
]
