from django.urls import path

from accounts.views import LogoutView, TokenObtainView, TokenRefreshTenantView

urlpatterns = [
    path("token", TokenObtainView.as_view(), name="token_obtain"),
    path("token/refresh", TokenRefreshTenantView.as_view(), name="token_refresh"),
    path("logout", LogoutView.as_view(), name="logout"),
]
