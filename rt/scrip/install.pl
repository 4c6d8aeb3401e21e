#!/usr/bin/perl
# Installs (idempotently) the rt-relay webhook scrip into an RT 5 instance: the action
# RT::Action::RtRelayWebhook (its module must be in RT's local lib, see README.md), one
# global scrip "rt-relay webhook" on every transaction, stage TransactionCreate.
#
#   perl -I/usr/share/request-tracker5/lib rt/scrip/install.pl [--disable|--enable]
use strict;
use warnings;
use RT;
RT::LoadConfig();
RT::Init();

my $mode = shift // '--enable';
my $user = RT->SystemUser;

my $action = RT::ScripAction->new($user);
$action->Load('rt-relay webhook');
unless ( $action->id ) {
    my ( $ok, $msg ) = $action->Create(
        Name        => 'rt-relay webhook',
        Description => 'Post the transaction and ticket ids to rt-relay (signed)',
        ExecModule  => 'RtRelayWebhook',
    );
    die "scrip action: $msg\n" unless $ok;
}

my $scrips = RT::Scrips->new($user);
$scrips->FindAllRows;    # a disabled scrip too: it is switched back on, not duplicated
$scrips->Limit( FIELD => 'Description', VALUE => 'rt-relay webhook' );
$scrips->OrderBy( FIELD => 'id', ORDER => 'ASC' );
my $scrip = $scrips->First;
# Earlier versions of this script could leave a second copy: keep the first only.
while ( my $extra = $scrips->Next ) {
    my ( $ok, $msg ) = $extra->Delete;
    warn "could not delete duplicate scrip " . $extra->id . ": $msg\n" unless $ok;
}
unless ($scrip) {
    $scrip = RT::Scrip->new($user);
    my ( $ok, $msg ) = $scrip->Create(
        Description    => 'rt-relay webhook',
        ScripCondition => 'On Transaction',
        ScripAction    => 'rt-relay webhook',
        Template       => 'Blank',
        Stage          => 'TransactionCreate',
        Queue          => 0,
    );
    die "scrip: $msg\n" unless $ok;
}
my $disabled = $mode eq '--disable' ? 1 : 0;
if ( ( $scrip->Disabled || 0 ) != $disabled ) {
    my ( $ok, $msg ) = $scrip->SetDisabled($disabled);
    die "scrip: $msg\n" unless $ok;
}
print "rt-relay webhook scrip ", ( $disabled ? 'disabled' : 'enabled' ), " (id ", $scrip->id, ")\n";
